// SPDX-License-Identifier: Apache-2.0
// Building the page without HTML strings: every value becomes a text node
// (textContent), so a device id or an image name such as "<script>" is
// shown as those characters and never parsed as markup.

// h('div.card#x', {onclick: fn, title: 't'}, child, 'text', [more]) -> element
export function h(spec, attrs, ...children) {
  const m = /^([a-z0-9]+)((?:[.#][A-Za-z0-9_-]+)*)$/.exec(spec);
  if (!m) throw new Error('bad element spec ' + spec);
  const el = document.createElement(m[1]);
  for (const part of m[2].match(/[.#][A-Za-z0-9_-]+/g) || []) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else el.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = String(v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// A horizontal bar of segments [{value, cls, label}] out of total.
export function bar(total, segments, title) {
  const el = h('div.bar', { role: 'img', 'aria-label': title || '' });
  const sum = Math.max(total, segments.reduce((a, s) => a + s.value, 0), 1);
  for (const s of segments) {
    if (s.value <= 0) continue;
    const seg = h('span.seg.' + s.cls, { title: `${s.label}: ${s.value}` });
    // CSSOM, not a style attribute: allowed by style-src 'self'
    seg.style.width = (100 * s.value / sum).toFixed(2) + '%';
    el.appendChild(seg);
  }
  return el;
}

export function fmtTime(t) {
  if (t === null || t === undefined || t === '') return '—';
  const d = typeof t === 'number' ? new Date(t * 1000) : new Date(t);
  if (isNaN(d)) return String(t);
  return d.toISOString().replace('T', ' ').slice(0, 19) + 'Z';
}

export function ago(t) {
  if (!t) return 'never';
  const s = Math.round((Date.now() - new Date(t)) / 1000);
  if (s < 60) return `${Math.max(s, 0)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function table(headers, rows, opts = {}) {
  return h('table' + (opts.cls ? '.' + opts.cls : ''),
    h('thead', h('tr', headers.map((x) => h('th', x)))),
    h('tbody', rows.length ? rows : h('tr', h('td.empty', { colspan: headers.length }, opts.empty || 'nothing here'))));
}

export function toast(msg, bad) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = bad ? 'show bad' : 'show';
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ''; }, 4000);
}

export function pill(state) {
  return h('span.pill.s-' + String(state).replace(/[^a-z_]/g, ''), String(state));
}

// Runs fn now and then every ms after the previous run ended (not while
// the tab is hidden); returns the function that stops it.
export function poll(fn, ms) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    timer = null;
    if (stopped) return;
    if (!document.hidden) {
      try { await fn(); } catch (e) { if (!stopped) toast(e.message, true); }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; if (timer) clearTimeout(timer); };
}
