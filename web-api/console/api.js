// SPDX-License-Identifier: Apache-2.0
// The REST API (/api/v1, same origin). The token lives in memory and in
// sessionStorage (gone with the tab), is sent only in the Authorization
// header and never put in a URL. GETs remember the ETag of each answer and
// send it back: an unchanged campaign costs a 304 without a body.

const KEY = 'fleetota.token';
let token = sessionStorage.getItem(KEY);
const etags = new Map(); // url -> {etag, body}

export const session = {
  get token() { return token; },
  role: null,
  actor: null,
  set(t) { token = t; sessionStorage.setItem(KEY, t); },
  clear() { token = null; this.role = null; sessionStorage.removeItem(KEY); etags.clear(); },
  can(role) {
    const rank = { viewer: 1, operator: 2, admin: 3 };
    return (rank[this.role] || 0) >= rank[role];
  },
};

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export const onUnauthorized = { fn: null };

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  const cached = method === 'GET' ? etags.get(path) : null;
  if (cached) headers['If-None-Match'] = cached.etag;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch('/api/v1' + path, {
    method, headers, body: payload, cache: 'no-store', credentials: 'omit', redirect: 'error',
  });
  if (res.status === 304 && cached) return cached.body;
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    const e = data && data.error ? data.error : {};
    if (res.status === 401 && onUnauthorized.fn) onUnauthorized.fn();
    throw new ApiError(res.status, e.code, e.message, e.field);
  }
  const etag = res.headers.get('ETag');
  if (method === 'GET' && etag) {
    etags.set(path, { etag, body: data });
    if (etags.size > 200) etags.delete(etags.keys().next().value);
  }
  return data;
}

export const api = {
  get: (p) => call('GET', p),
  post: (p, body) => call('POST', p, body),
};

// '/devices' + qs({model: 'x', limit: 50}) -> '/devices?model=x&limit=50'
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') u.set(k, v);
  const s = u.toString();
  return s ? '?' + s : '';
}

export function enc(id) { return encodeURIComponent(id); }
