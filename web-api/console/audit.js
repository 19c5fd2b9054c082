// SPDX-License-Identifier: Apache-2.0
// The audit log (append-only), newest first, filtered by actor, action
// and object as GET /api/v1/audit allows.
import { api, qs } from './api.js';
import { h, clear, fmtTime, table, toast } from './dom.js';

export function auditView(main) {
  const actor = h('input#audit-actor', { placeholder: 'actor (token:ID:NAME)', 'aria-label': 'actor' });
  const action = h('input#audit-action', { placeholder: 'action (campaign.pause)', 'aria-label': 'action' });
  const object = h('input#audit-object', { placeholder: 'object (campaign:ID)', 'aria-label': 'object' });
  const list = h('div#audit-list');
  const more = h('button#audit-more', { type: 'button', hidden: true }, 'Older');
  let cursor = null;
  main.append(h('div.head', h('h1', 'Audit log')),
    h('form.filters.card', { onsubmit: (ev) => { ev.preventDefault(); load(false); } },
      actor, action, object, h('button.primary', { type: 'submit' }, 'Filter')), list, more);
  more.addEventListener('click', () => load(true));
  async function load(next) {
    if (!next) cursor = null;
    try {
      const page = await api.get('/audit' + qs({ actor: actor.value.trim(), action: action.value.trim(),
        object: object.value.trim(), cursor, limit: 100 }));
      const rows = page.items.map((a) => h('tr',
        h('td', String(a.id)), h('td', fmtTime(a.at)), h('td', a.actor), h('td', h('code', a.action)), h('td', a.object),
        h('td', a.before || a.after ? h('details', h('summary', 'change'),
          h('pre', a.before ? 'before: ' + JSON.stringify(a.before, null, 1) + '\n' : '',
            a.after ? 'after: ' + JSON.stringify(a.after, null, 1) : '')) : '')));
      if (!next) clear(list).append(table(['#', 'At', 'Actor', 'Action', 'Object', ''], rows, { empty: 'No entry matches.', cls: 'audit' }));
      else list.querySelector('tbody').append(...rows);
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (e) {
      toast((e.field ? `${e.field}: ` : '') + e.message, true);
    }
  }
  load(false);
  return null;
}
