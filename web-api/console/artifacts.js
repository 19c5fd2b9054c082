// SPDX-License-Identifier: Apache-2.0
// Artifacts with what their signature says: signer key, the KeyLists that
// trust it, security counter, expiry and the security flag.
import { api, session, qs, enc } from './api.js';
import { h, clear, fmtTime, table, poll } from './dom.js';

function size(n) {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

export function artifactsView(main) {
  const body = h('div');
  main.append(h('div.head', h('h1', 'Artifacts'),
    h('p.muted', 'Sign with ota-keys sign … --bundle-out; upload with ota-ctl artifacts upload (docs/ctl.md).')), body);
  return poll(async () => {
    const [arts, kls] = await Promise.all([api.get('/artifacts' + qs({ limit: 500 })), api.get('/keylists' + qs({ limit: 500 }))]);
    const trusting = (key) => kls.items.filter((k) => k.key_ids.includes(key)).map((k) => `v${k.version}`);
    const rows = arts.items.map((a) => {
      const kl = trusting(a.signing_key_id);
      return h('tr', { dataset: { artifact: a.artifact_id } },
        h('td', h('b', a.artifact_id), h('br'), h('small.image-name', a.image_name), h('small', ` ${size(a.image_size)}`)),
        h('td', a.product, h('br'), h('small', (a.hw_revisions || []).join(', '))),
        h('td', a.version, h('br'), h('small', `code ${a.version_code}`)),
        h('td', String(a.security_counter), a.is_security_update ? [' ', h('span.pill.s-failed', 'security')] : null),
        h('td', h('code', { title: a.signing_key_id }, a.signing_key_id.slice(0, 16) + '…'), h('br'),
          h('small', kl.length ? `in KeyList ${kl.join(', ')}` : 'in no stored KeyList')),
        h('td', fmtTime(a.issued_at), h('br'), h('small', a.expires_at ? `expires ${fmtTime(a.expires_at)}` : 'never expires')),
        h('td', `${a.assigned_devices}`),
        h('td', session.can('operator') ? h('a.button', { href: '#/new-campaign/' + enc(a.artifact_id) }, 'Campaign…') : null));
    });
    clear(body).append(table(['Artifact / image', 'Product', 'Version', 'Counter', 'Signer key', 'Issued', 'Devices', ''], rows,
      { empty: 'No artifact uploaded yet.', cls: 'artifacts' }));
  }, 15000);
}
