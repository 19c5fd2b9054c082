// SPDX-License-Identifier: Apache-2.0
// Campaigns: the list, the live view of one campaign (stages, failures by
// error name, rate, pause reason, timeline, actions by role) and the form
// that creates a campaign from an artifact.
import { api, session, qs, enc, ApiError } from './api.js';
import { h, clear, bar, fmtTime, ago, table, toast, pill, poll } from './dom.js';

const TERMINAL = new Set(['completed', 'cancelled', 'failed']);
const POLL_MS = 2000;

function sum(stages, key) {
  return stages.reduce((a, s) => a + (s.devices ? s.devices[key] : 0), 0);
}

function progressBar(total, d, label) {
  return bar(total, [
    { value: d.confirmed, cls: 'ok', label: 'confirmed' },
    { value: d.failed, cls: 'bad', label: 'failed' },
    { value: d.timed_out, cls: 'warn', label: 'timed out' },
    { value: d.in_flight, cls: 'flight', label: 'in flight' },
  ], label);
}

function totals(c) {
  const s = c.stages || [];
  return {
    admitted: sum(s, 'admitted'), pending: sum(s, 'pending'), in_flight: sum(s, 'in_flight'),
    confirmed: sum(s, 'confirmed'), failed: sum(s, 'failed'), timed_out: sum(s, 'timed_out'),
  };
}

// ---- the list ----------------------------------------------------------------
export function campaignsView(main) {
  const filter = h('select#campaign-state', { 'aria-label': 'state' },
    ['', 'draft', 'awaiting_approval', 'running', 'paused', 'completed', 'cancelled', 'failed']
      .map((s) => h('option', { value: s }, s || 'every state')));
  const body = h('div');
  main.append(h('div.head', h('h1', 'Campaigns'), filter,
    session.can('operator') ? h('a.button.primary#new-campaign', { href: '#/new-campaign' }, 'New campaign') : null), body);
  const load = async () => {
    const list = await api.get('/campaigns' + qs({ state: filter.value, limit: 200 }));
    const live = list.items.filter((c) => c.state === 'running' || c.state === 'paused').slice(0, 20);
    const status = new Map();
    await Promise.all(live.map(async (c) => {
      try { status.set(c.id, await api.get('/campaigns/' + enc(c.id))); } catch { /* shown without a bar */ }
    }));
    const rows = list.items.slice().reverse().map((c) => {
      const st = status.get(c.id);
      const t = st ? totals(st) : null;
      return h('tr', { dataset: { id: c.id } },
        h('td', h('a', { href: '#/campaigns/' + enc(c.id) }, c.id)),
        h('td', c.kind),
        h('td', c.artifact || (c.keylist_version ? `KeyList v${c.keylist_version}` : '—')),
        h('td', pill(c.state)),
        h('td.wide', st ? [progressBar(st.target_size, t, c.id),
          h('small', `${t.confirmed} / ${st.target_size} confirmed`)] : h('small.muted', c.reason || '')),
        h('td', fmtTime(c.created_at)));
    });
    clear(body).append(table(['Campaign', 'Kind', 'Artifact', 'State', 'Progress', 'Created'], rows,
      { empty: 'No campaign yet.', cls: 'campaigns' }));
  };
  filter.addEventListener('change', () => load().catch((e) => toast(e.message, true)));
  return poll(load, 5000);
}

// ---- one campaign, live ----------------------------------------------------------
function actionsFor(c) {
  if (!session.can('operator')) return [];
  const a = [];
  if (c.state === 'draft') a.push('start');
  if (c.state === 'awaiting_approval' && c.created_by !== session.actor) a.push('approve');
  if (c.state === 'running') a.push('pause');
  if (c.state === 'paused') a.push('resume');
  if (!TERMINAL.has(c.state)) a.push('cancel');
  return a;
}

export function campaignView(main, id) {
  const head = h('div.head');
  const banner = h('div#reason');
  const overall = h('section.card#overall');
  const stagesEl = h('section#stages');
  const timeline = h('ol.timeline#timeline');
  main.append(head, banner, overall, stagesEl,
    h('section.card', h('h2', 'Timeline'), timeline));
  let lastConfirmed = null;
  let lastAt = 0;
  let rate = 0;
  let eventCursor = null;
  let busy = false;

  async function act(action) {
    if (busy) return;
    if (action === 'cancel' && !confirm(`Cancel campaign ${id}? This cannot be undone.`)) return;
    busy = true;
    try {
      const c = await api.post(`/campaigns/${enc(id)}/${action}`);
      toast(`${action}: campaign is ${c.state}`);
      render(c, null);
      await refresh();
    } catch (e) {
      toast(`${action} refused: ${e.message}`, true);
    } finally {
      busy = false;
    }
  }

  function render(c, failures) {
    const t = totals(c);
    const now = Date.now();
    if (lastConfirmed !== null && now > lastAt) {
      const r = (t.confirmed - lastConfirmed) * 60000 / (now - lastAt);
      rate = rate ? 0.5 * rate + 0.5 * r : r;
    }
    lastConfirmed = t.confirmed;
    lastAt = now;
    clear(head).append(
      h('h1', h('a.up', { href: '#/campaigns' }, 'Campaigns'), ' / ', h('span#campaign-id', c.id)),
      h('span#campaign-state', pill(c.state)),
      h('div.actions#actions', actionsFor(c).map((a) => h('button#act-' + a, {
        type: 'button', class: a === 'cancel' ? 'danger' : (a === 'pause' ? 'warn' : 'primary'),
        onclick: () => act(a),
      }, a[0].toUpperCase() + a.slice(1)))));
    clear(banner);
    if (c.reason) {
      banner.append(h('div.banner' + (c.state === 'paused' || c.state === 'failed' ? '.bad' : ''),
        h('strong', c.state === 'paused' ? 'Paused: ' : 'Reason: '), h('span#reason-text', c.reason)));
    }
    clear(overall).append(
      h('div.kv',
        kv('Artifact', c.artifact ? h('span', c.artifact) : `KeyList v${c.keylist_version}`),
        kv('Target', String(c.target_size)),
        kv('Stage', c.stages.length ? `${Math.min(c.current_stage + 1, c.stages.length)} of ${c.stages.length}` : '—'),
        kv('Rate', h('span#rate', `${Math.max(0, rate).toFixed(1)} confirmed/min`), h('small', ` (limit ${c.rate_per_minute}/min)`)),
        kv('Created', `${fmtTime(c.created_at)} by ${c.created_by}`),
        c.approved_by ? kv('Approved by', c.approved_by) : null,
        c.started_at ? kv('Started', fmtTime(c.started_at)) : null,
        c.finished_at ? kv('Finished', fmtTime(c.finished_at)) : null),
      h('div.big', progressBar(c.target_size, t, 'overall'),
        h('div.legend#totals',
          legend('ok', 'confirmed', t.confirmed, 'total-confirmed'),
          legend('bad', 'failed', t.failed, 'total-failed'),
          legend('warn', 'timed out', t.timed_out, 'total-timed-out'),
          legend('flight', 'in flight', t.in_flight, 'total-in-flight'),
          legend('pending', 'pending', t.pending, 'total-pending'),
          h('span', ` of ${c.target_size}`))));
    const byStage = new Map();
    for (const f of (failures || [])) {
      if (!byStage.has(f.stage)) byStage.set(f.stage, []);
      byStage.get(f.stage).push(f);
    }
    if (failures !== null) {
      clear(stagesEl).append(...c.stages.map((s) => stageCard(c, s, byStage.get(s.stage) || [])));
    }
  }

  async function refresh() {
    const [c, f, ev] = await Promise.all([
      api.get('/campaigns/' + enc(id)),
      api.get(`/campaigns/${enc(id)}/failures`),
      api.get(`/campaigns/${enc(id)}/events` + qs({ cursor: eventCursor, limit: 200 })),
    ]);
    render(c, f.items);
    for (const e of ev.items) {
      timeline.prepend(h('li', h('time', fmtTime(e.at)), ' ',
        h('span.kind', e.kind), e.stage !== null ? h('span.stage', ` stage ${e.stage + 1}`) : null,
        e.detail ? h('span.detail', ' — ', e.detail) : null));
      eventCursor = String(e.id);
    }
  }

  return poll(async () => {
    try {
      await refresh();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        clear(main).append(h('p.error', `No campaign ${id}.`));
        return;
      }
      throw e;
    }
  }, POLL_MS);
}

function kv(k, ...v) { return h('div', h('dt', k), h('dd', ...v)); }
function legend(cls, label, n, id) {
  return h('span.lg', h('i.sw.' + cls), `${label} `, h('b#' + id, String(n)), '  ');
}

function stageCard(c, s, failures) {
  const d = s.devices;
  const size = s.count !== null && s.count !== undefined ? `${s.count} devices` : `${s.percent} % of the target`;
  const planned = s.count ?? Math.ceil((s.percent / 100) * c.target_size);
  const target = Math.max(d.admitted, 0);
  const current = c.current_stage === s.stage && !TERMINAL.has(c.state);
  return h('div.card.stage' + (current ? '.current' : '') + (s.completed_at ? '.done' : ''), { dataset: { stage: s.stage } },
    h('h3', `Stage ${s.stage + 1}`, h('small', ` ${size}`), current ? h('span.pill.s-running', 'current') : null),
    progressBar(target || planned, d, `stage ${s.stage + 1}`),
    h('div.counts',
      count('target', target || `≤ ${planned}`), count('confirmed', d.confirmed, 'ok'), count('failed', d.failed, 'bad'),
      count('timed out', d.timed_out, 'warn'), count('in flight', d.in_flight, 'flight'), count('pending', d.pending)),
    failures.length ? h('ul.failures', failures.map((f) =>
      h('li', h('code', f.error || (f.state === 'timed_out' ? 'timed out' : 'unknown')), ` × ${f.devices}`))) : null,
    h('p.muted', `success ≥ ${pct(s.success_ratio)}, pause above ${pct(s.failure_ratio)} failed`,
      s.soak_seconds ? `, soak ${s.soak_seconds} s` : '', s.max_in_flight ? `, ≤ ${s.max_in_flight} in flight` : '',
      s.started_at ? ` · started ${ago(s.started_at)}` : '', s.completed_at ? ` · done ${fmtTime(s.completed_at)}` : ''));
}
function count(label, n, cls) { return h('span.count' + (cls ? '.' + cls : ''), h('b', String(n)), ' ', label); }
function pct(r) { return r === null || r === undefined ? '—' : `${Math.round(r * 1000) / 10} %`; }

// ---- create ------------------------------------------------------------------------
export function newCampaignView(main, artifact) {
  if (!session.can('operator')) {
    main.append(h('p.error', 'Creating a campaign needs the operator role.'));
    return null;
  }
  const f = {
    id: h('input#f-id', { required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,127}', placeholder: 'rel-1.2.0' }),
    artifact: h('select#f-artifact', { required: true }),
    model: h('input#f-model', { placeholder: 'model (empty: the artifact\'s product)' }),
    tags: h('input#f-tags', { placeholder: 'tags, all required (comma separated)' }),
    stages: h('textarea#f-stages', { rows: 6, spellcheck: 'false' }),
    rate: h('input#f-rate', { type: 'number', min: 1, value: 600 }),
    timeout: h('input#f-timeout', { type: 'number', min: 10, value: 600 }),
    windowOn: h('input#f-window', { type: 'checkbox' }),
    wStart: h('input#f-wstart', { type: 'time', value: '02:00' }),
    wHours: h('input#f-whours', { type: 'number', min: 1, max: 168, value: 4 }),
    approval: h('input#f-approval', { type: 'checkbox' }),
    start: h('input#f-start', { type: 'checkbox', checked: true }),
  };
  f.stages.value = JSON.stringify([
    { count: 5, failure_ratio: 0.2, soak_seconds: 60 },
    { percent: 30, failure_ratio: 0.1, soak_seconds: 60 },
    { percent: 100, failure_ratio: 0.1 },
  ], null, 1);
  const err = h('p.error#create-error');
  const form = h('form.card.create#create-form', { onsubmit: submit },
    h('h1', 'New campaign'),
    row('Campaign id', f.id), row('Artifact', f.artifact), row('Target model', f.model), row('Target tags', f.tags),
    row('Stages (JSON: count or percent, success_ratio, failure_ratio, soak_seconds, max_in_flight)', f.stages),
    row('Notifications per minute', f.rate), row('Device timeout (s)', f.timeout),
    h('div.row', h('label', f.windowOn, ' Only in a daily window (UTC) from '), f.wStart, ' for ', f.wHours, ' h'),
    h('div.row', h('label', f.approval, ' Requires approval by another operator')),
    h('div.row', h('label', f.start, ' Start at once')),
    h('button.primary#create-submit', { type: 'submit' }, 'Create'), err);
  main.append(form);
  api.get('/artifacts' + qs({ limit: 500 })).then((list) => {
    for (const a of list.items) {
      f.artifact.append(h('option', { value: a.artifact_id },
        `${a.artifact_id} — ${a.product} ${a.version}${a.is_security_update ? ' (security)' : ''}`));
    }
    if (artifact) f.artifact.value = artifact;
  }).catch((e) => { err.textContent = e.message; });

  async function submit(ev) {
    ev.preventDefault();
    err.textContent = '';
    let stages;
    try { stages = JSON.parse(f.stages.value); } catch (e) { err.textContent = `Stages: ${e.message}`; return; }
    const target = {};
    if (f.model.value.trim()) target.model = [f.model.value.trim()];
    const tags = f.tags.value.split(',').map((t) => t.trim()).filter(Boolean);
    if (tags.length) target.tags_all = tags;
    const body = {
      id: f.id.value.trim(), artifact: f.artifact.value, target, stages,
      rate_per_minute: Number(f.rate.value), device_timeout_seconds: Number(f.timeout.value),
      requires_approval: f.approval.checked,
    };
    if (f.windowOn.checked) {
      const [hh, mm] = f.wStart.value.split(':').map(Number);
      body.windows = [{ days: [0, 1, 2, 3, 4, 5, 6], start_minute: hh * 60 + mm, duration_minutes: Number(f.wHours.value) * 60 }];
    }
    try {
      const c = await api.post('/campaigns', body);
      if (f.start.checked) await api.post(`/campaigns/${enc(c.id)}/start`);
      location.hash = '#/campaigns/' + enc(c.id);
    } catch (e) {
      err.textContent = (e.field ? `${e.field}: ` : '') + e.message;
    }
  }
  return null;
}
function row(label, input) { return h('div.row', h('label', label), input); }
