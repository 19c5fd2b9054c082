// SPDX-License-Identifier: Apache-2.0
// One device: versions, counters, KeyList, last error, its events and the
// campaigns it took part in.
import { api, enc, ApiError } from './api.js';
import { h, clear, fmtTime, ago, table, pill, poll } from './dom.js';

export function deviceView(main, id) {
  const body = h('div');
  main.append(h('div.head', h('h1', h('a.up', { href: '#/fleet' }, 'Fleet'), ' / ', h('span#device-id', id))), body);
  return poll(async () => {
    let d;
    try {
      d = await api.get('/devices/' + enc(id));
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
        clear(body).append(h('p.error', `No device ${id} (${e.message}).`));
        return;
      }
      throw e;
    }
    const kv = (k, ...v) => h('div', h('dt', k), h('dd', ...v));
    clear(body).append(
      h('section.card', h('dl.kv',
        kv('State', pill(d.state), d.suspect ? [' ', h('span.pill.s-failed', 'suspect'), ' ', d.suspect_reason] : null),
        kv('Running version', `${d.version} (code ${d.version_code})`),
        kv('Pending version', d.pending_version || '—'),
        kv('Previous version', previous(d.events, d.version)),
        kv('Model', `${d.model} rev ${d.hw_revision}`),
        kv('Security counter', String(d.security_counter)),
        kv('KeyList / RootList', `v${d.keylist_version} / v${d.rootlist_version}`),
        kv('Active slot', String(d.active_slot ?? '—')),
        kv('Last error', d.last_error ? h('code', d.last_error) : '—', d.last_error_detail ? h('span.detail', ' ', d.last_error_detail) : null),
        kv('Last seen', `${fmtTime(d.last_seen)} (${ago(d.last_seen)})`),
        kv('Tags', (d.tags || []).length ? d.tags.map((t) => h('span.tag', t)) : '—'),
        kv('Groups', (d.groups || []).join(', ') || '—'))),
      h('section.card', h('h2', 'Campaigns'), table(['Campaign', 'Artifact', 'State', 'Error', 'Since'],
        (d.assignments || []).map((a) => h('tr',
          h('td', a.campaign_id ? h('a', { href: '#/campaigns/' + enc(a.campaign_id) }, a.campaign_id) : '—'),
          h('td', a.artifact_id), h('td', pill(a.state)), h('td', a.error ? h('code', a.error) : '—'), h('td', fmtTime(a.created_at)))),
        { empty: 'This device took part in no campaign.' })),
      h('section.card', h('h2', 'Events (newest first)'), table(['Received', 'Kind', 'Version', 'Counter', 'Error', 'Detail', 'Campaign'],
        (d.events || []).map((e) => h('tr', h('td', fmtTime(e.received_at)), h('td', e.kind), h('td', e.version || '—'),
          h('td', e.security_counter ?? '—'), h('td', e.error ? h('code', e.error) : '—'), h('td', e.detail || ''), h('td', e.campaign_id || ''))),
        { empty: 'No event.' })));
  }, 5000);
}

// The newest version other than the running one that the device reported.
function previous(events, running) {
  for (const e of events || []) if (e.version && e.version !== running) return e.version;
  return '—';
}
