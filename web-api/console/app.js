// SPDX-License-Identifier: Apache-2.0
// The console's shell: sign-in with an API token, the role, the views
// behind #/fleet, #/campaigns, #/campaigns/ID, #/devices/ID, #/artifacts
// and #/audit. Each view returns a function that stops its polling.
import { api, session, onUnauthorized, ApiError } from './api.js';
import { h, clear, toast } from './dom.js';
import { fleetView } from './fleet.js';
import { campaignsView, campaignView, newCampaignView } from './campaigns.js';
import { deviceView } from './device.js';
import { artifactsView } from './artifacts.js';
import { auditView } from './audit.js';

const main = document.getElementById('main');
let stopView = null;

const routes = [
  [/^#\/fleet$/, fleetView, 'fleet'],
  [/^#\/campaigns$/, campaignsView, 'campaigns'],
  [/^#\/campaigns\/([^/]+)$/, campaignView, 'campaigns'],
  [/^#\/new-campaign(?:\/([^/]+))?$/, newCampaignView, 'campaigns'],
  [/^#\/devices\/([^/]+)$/, deviceView, 'fleet'],
  [/^#\/artifacts$/, artifactsView, 'artifacts'],
  [/^#\/audit$/, auditView, 'audit'],
];

function signIn(message) {
  if (stopView) stopView();
  stopView = null;
  document.getElementById('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  document.getElementById('who').textContent = '';
  const input = h('input#token', { type: 'password', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'fota_…', required: true, 'aria-label': 'API token' });
  const err = h('p.error#signin-error', message || '');
  const form = h('form.signin#signin', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!/^fota_[A-Za-z0-9_-]{43}$/.test(t)) {
        err.textContent = 'That is not an API token (fota_ followed by 43 characters).';
        return;
      }
      session.set(t);
      await start();
    },
  },
  h('h1', 'Sign in'),
  h('p', 'Paste an API token (', h('code', 'ota-server token create --role viewer|operator|admin'),
    '). It stays in this tab only and is never put in a URL.'),
  input, h('button.primary#signin-submit', { type: 'submit' }, 'Sign in'), err);
  clear(main).appendChild(form);
  input.focus();
}

async function start() {
  try {
    const me = await api.get('/me');
    session.role = me.role;
    session.actor = me.actor;
  } catch (e) {
    session.clear();
    signIn(e instanceof ApiError && e.status === 401 ? 'Unknown or revoked token.' : `Cannot sign in: ${e.message}`);
    return;
  }
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
  const who = document.getElementById('who');
  who.textContent = '';
  who.append(h('span.role.r-' + session.role, session.role), ' ', session.actor);
  if (!location.hash || location.hash === '#') location.hash = '#/campaigns';
  else route();
}

function route() {
  if (!session.role) return;
  if (stopView) stopView();
  stopView = null;
  const hash = location.hash || '#/campaigns';
  for (const [re, view, tab] of routes) {
    const m = re.exec(hash);
    if (!m) continue;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === tab);
    clear(main);
    let param = null;
    try { param = m[1] ? decodeURIComponent(m[1]) : null; } catch { param = null; }
    stopView = view(main, param) || null;
    return;
  }
  location.hash = '#/campaigns';
}

onUnauthorized.fn = () => { session.clear(); signIn('The token was revoked or is unknown: sign in again.'); };
window.addEventListener('hashchange', route);
document.getElementById('signout').addEventListener('click', () => {
  session.clear();
  signIn('Signed out.');
});
window.addEventListener('unhandledrejection', (ev) => {
  toast(ev.reason && ev.reason.message ? ev.reason.message : String(ev.reason), true);
});

if (session.token) start(); else signIn();
