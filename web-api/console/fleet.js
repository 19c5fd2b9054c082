// SPDX-License-Identifier: Apache-2.0
// The fleet: devices by model, version and state, online or quiet; a
// device search with the dynamic-group filter language; KeyList coverage
// and the stragglers that hold back a key's retirement.
import { api, qs, enc } from './api.js';
import { h, clear, bar, ago, table, toast, pill, poll } from './dom.js';

const ONLINE_S = 600;
const PALETTE = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5'];

export function fleetView(main) {
  const summary = h('section.grid#fleet-summary');
  const coverage = h('section.card#coverage');
  const q = h('input#fleet-q', { type: 'search', placeholder: 'device id contains…', 'aria-label': 'search' });
  const model = h('select#fleet-model', { 'aria-label': 'model' }, h('option', { value: '' }, 'every model'));
  const version = h('select#fleet-version', { 'aria-label': 'version' }, h('option', { value: '' }, 'every version'));
  const seen = h('select#fleet-seen', { 'aria-label': 'online' },
    h('option', { value: '' }, 'online or quiet'), h('option', { value: 'online' }, 'online'),
    h('option', { value: 'quiet' }, 'quiet'));
  const filter = h('textarea#fleet-filter', { rows: 2, spellcheck: 'false',
    placeholder: '{"all":[{"field":"model","op":"eq","value":"fx-model"},{"field":"version_code","op":"lt","value":111}]}',
    'aria-label': 'filter (the dynamic-group language)' });
  const err = h('p.error#fleet-error');
  const list = h('div#fleet-devices');
  const more = h('button#fleet-more', { type: 'button', hidden: true }, 'More');
  let cursor = null;

  main.append(h('div.head', h('h1', 'Fleet')), summary, coverage,
    h('section.card', h('h2', 'Devices'),
      h('form.filters#fleet-form', { onsubmit: (ev) => { ev.preventDefault(); search(false); } },
        q, model, version, seen, h('button.primary', { type: 'submit' }, 'Search')),
      h('details', h('summary', 'Filter with the dynamic-group language (as in groups and campaign targets)'), filter),
      err, list, more));
  more.addEventListener('click', () => search(true));

  function compose() {
    const conds = [];
    if (model.value) conds.push({ field: 'model', op: 'eq', value: model.value });
    if (version.value) conds.push({ field: 'version', op: 'eq', value: version.value });
    if (seen.value) conds.push({ field: 'last_seen', op: seen.value === 'online' ? 'within' : 'not_within', value: ONLINE_S });
    if (filter.value.trim()) conds.push(JSON.parse(filter.value));
    if (!conds.length) return undefined;
    return JSON.stringify(conds.length === 1 ? conds[0] : { all: conds });
  }

  async function search(next) {
    err.textContent = '';
    let f;
    try { f = compose(); } catch (e) { err.textContent = `filter: ${e.message}`; return; }
    if (!next) cursor = null;
    try {
      const page = await api.get('/fleet/devices' + qs({ filter: f, q: q.value.trim(), cursor, limit: 100 }));
      const rows = page.items.map(deviceRow);
      if (!next) clear(list).append(table(['Device', 'Model', 'Version', 'State', 'KeyList', 'Seen', 'Last error'], rows,
        { empty: 'No device matches.', cls: 'devices' }));
      else list.querySelector('tbody').append(...rows);
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (e) {
      err.textContent = (e.field ? `${e.field}: ` : '') + e.message;
    }
  }

  async function loadSummary() {
    const [s, kr] = await Promise.all([api.get('/fleet' + qs({ online_seconds: ONLINE_S })), api.get('/keyrotation')]);
    renderSummary(summary, s, model, version);
    renderCoverage(coverage, kr);
  }
  search(false);
  return poll(loadSummary, 10000);
}

function deviceRow(d) {
  const online = d.last_seen && (Date.now() - new Date(d.last_seen)) / 1000 < ONLINE_S;
  return h('tr', { dataset: { device: d.device_id } },
    h('td', h('a.device-id', { href: '#/devices/' + enc(d.device_id) }, d.device_id)),
    h('td', d.model), h('td', d.version), h('td', pill(d.state), d.suspect ? h('span.pill.s-failed', 'suspect') : null),
    h('td', `v${d.keylist_version}`),
    h('td', h('span.dot' + (online ? '.on' : '.off')), online ? ' online ' : ' quiet ', h('small', ago(d.last_seen))),
    h('td', d.last_error ? h('code', d.last_error) : '—'));
}

function group(rows, key) {
  const m = new Map();
  for (const r of rows) {
    const k = r[key];
    const e = m.get(k) || { key: k, devices: 0, online: 0 };
    e.devices += r.devices;
    e.online += r.online;
    m.set(k, e);
  }
  return [...m.values()].sort((a, b) => b.devices - a.devices);
}

function renderSummary(el, s, modelSel, versionSel) {
  const models = group(s.breakdown, 'model');
  for (const [sel, values] of [[modelSel, models.map((m) => m.key)], [versionSel, group(s.breakdown, 'version').map((v) => v.key)]]) {
    const have = new Set([...sel.options].map((o) => o.value));
    for (const v of values) if (!have.has(v)) sel.append(h('option', { value: v }, v));
  }
  const card = (title, ...body) => h('div.card', h('h2', title), ...body);
  const stacked = (rows, total) => {
    const segs = rows.map((r, i) => ({ value: r.devices, cls: PALETTE[i % PALETTE.length], label: r.key }));
    return [bar(total, segs, 'share'), h('ul.legend', rows.map((r, i) =>
      h('li', h('i.sw.' + PALETTE[i % PALETTE.length]), h('span', r.key), ` ${r.devices}`)))];
  };
  const perModel = models.map((m) => {
    const versions = group(s.breakdown.filter((b) => b.model === m.key), 'version');
    return h('div.model', h('h3', m.key, h('small', ` ${m.devices} devices`)), stacked(versions, m.devices));
  });
  clear(el).append(
    card('Devices', h('p.big-number#fleet-total', String(s.devices)),
      bar(s.devices, [{ value: s.online, cls: 'ok', label: 'online' }, { value: s.devices - s.online, cls: 'pending', label: 'quiet' }], 'online'),
      h('p', h('b#fleet-online', String(s.online)), ` online (seen in the last ${s.online_seconds / 60} min), `,
        h('b', String(s.devices - s.online)), ' quiet',
        s.suspect ? [', ', h('b.bad', String(s.suspect)), ' suspect'] : '',
        s.decommissioned ? `, ${s.decommissioned} decommissioned` : '')),
    card('By model and version', perModel.length ? perModel : h('p.muted', 'No device yet.')),
    card('By state', stacked(group(s.breakdown, 'state'), s.devices)),
    ...(s.truncated ? [h('p.muted', 'More combinations than shown.')] : []));
}

function renderCoverage(el, kr) {
  const total = kr.coverage.reduce((a, c) => a + c.devices, 0);
  clear(el).append(h('h2', 'KeyList coverage'),
    h('p', `Newest KeyList: v${kr.latest_keylist ?? '—'}. A KeyList may drop a key once `,
      h('b', `${Math.round(kr.min_share * 100)} %`), ' of the fleet trusts its successor.'),
    h('div.covs', kr.coverage.map((c) => h('div.cov', h('span.cov-v', `v${c.keylist_version}`),
      bar(total, [{ value: c.devices, cls: c.keylist_version === kr.latest_keylist ? 'ok' : 'warn', label: `v${c.keylist_version}` }], `v${c.keylist_version}`),
      h('span', `${c.devices} devices, ${(c.share * 100).toFixed(1)} %`)))),
    h('h3', `Stragglers (${kr.stragglers.length}${kr.stragglers.length >= 100 ? '+' : ''})`),
    table(['Device', 'KeyList', 'Model', 'Version', 'Last seen'], kr.stragglers.slice(0, 20).map((s) =>
      h('tr', h('td', h('a', { href: '#/devices/' + enc(s.device_id) }, s.device_id)), h('td', `v${s.keylist_version}`),
        h('td', s.model), h('td', s.version), h('td', ago(s.last_seen)))), { empty: 'None: every device trusts the newest KeyList.' }));
}
