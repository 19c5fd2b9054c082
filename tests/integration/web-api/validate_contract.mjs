// SPDX-License-Identifier: Apache-2.0
// Validates recorded API responses against web-api/openapi.yaml with ajv
// (JSON Schema 2020-12, the dialect of OpenAPI 3.1):
// - every response's path and method are an operation of the spec;
// - its status is documented for that operation;
// - a JSON body validates against the documented schema;
// - every operation of the spec was exercised with a success status.
// usage: node validate_contract.mjs openapi.yaml responses.tsv
// (one response a line: METHOD, path, status, content type, base64 body,
// separated by tabs)
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.env.NODE_PATH || '.', 'noop.js'));
const YAML = require('yaml');
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default ?? require('ajv-formats');

const [specPath, responsesPath, coverFlag, coverTags] = process.argv.slice(2);
const cover = coverFlag === '--cover' ? new Set(coverTags.split(',')) : null;
const spec = YAML.parse(readFileSync(specPath, 'utf8'));
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema(spec, 'openapi.json');

const escape = (s) => s.replaceAll('~', '~0').replaceAll('/', '~1');
const pointer = (parts) => parts.map((p) => encodeURIComponent(escape(String(p)))).join('/');

function deref(obj) {
  let seen = 0;
  while (obj && obj.$ref && seen++ < 8) {
    const parts = obj.$ref.replace(/^#\//, '').split('/').map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'));
    obj = parts.reduce((o, k) => o?.[k], spec);
  }
  return obj;
}

const templates = Object.keys(spec.paths).map((t) => ({
  template: t,
  re: new RegExp('^' + t.replace(/\{[^}]+\}/g, '[^/]+') + '$'),
  literal: !t.includes('{'),
}));

function findTemplate(path) {
  // a literal path wins over a template (/api/v1/tokens vs {id})
  const hits = templates.filter((t) => t.re.test(path));
  hits.sort((a, b) => Number(b.literal) - Number(a.literal) || b.template.length - a.template.length);
  return hits[0]?.template;
}

const lines = readFileSync(responsesPath, 'utf8').split('\n').filter(Boolean);
const exercised = new Set();
const failures = [];
let validated = 0;
const validators = new Map();

for (const [i, line] of lines.entries()) {
  const [m, p, st, ct, b64] = line.split('\t');
  const r = { method: m, path: p, status: Number(st), content_type: ct,
              body: Buffer.from(b64 || '', 'base64').toString('utf8') };
  const where = `#${i + 1} ${r.method} ${r.path} -> ${r.status}`;
  const template = findTemplate(r.path);
  if (!template) {
    // a path outside the contract must be a JSON 404
    if (r.status !== 404) failures.push(`${where}: path not in the spec`);
    continue;
  }
  const method = r.method.toLowerCase();
  const op = spec.paths[template][method];
  if (!op) {
    failures.push(`${where}: method not in the spec for ${template}`);
    continue;
  }
  const responses = op.responses;
  const key = responses[String(r.status)] ? String(r.status) : responses.default ? 'default' : null;
  if (!key) {
    failures.push(`${where}: status not documented for ${method.toUpperCase()} ${template}`);
    continue;
  }
  if (r.status < 300) exercised.add(`${method} ${template}`);
  const resp = deref(responses[key]);
  const ctype = (r.content_type || '').split(';')[0].trim();
  const content = resp.content || {};
  if (!content[ctype]) {
    if (r.body.length === 0 && Object.keys(content).length === 0) continue;
    failures.push(`${where}: content type '${ctype}' not documented (${Object.keys(content).join(', ')})`);
    continue;
  }
  if (ctype !== 'application/json') continue;
  let body;
  try {
    body = JSON.parse(r.body);
  } catch (e) {
    failures.push(`${where}: body is not JSON`);
    continue;
  }
  // the schema by its location in the spec document (refs resolve in it)
  const isRef = responses[key].$ref;
  const loc = isRef
    ? responses[key].$ref.replace(/^#\//, '').split('/').map((p) => p.replaceAll('~1', '/').replaceAll('~0', '~'))
    : ['paths', template, method, 'responses', key];
  const id = 'openapi.json#/' + pointer([...loc, 'content', ctype, 'schema']);
  let validate = validators.get(id);
  if (!validate) {
    validate = ajv.compile({ $ref: id });
    validators.set(id, validate);
  }
  if (!validate(body)) {
    failures.push(`${where}: ${ajv.errorsText(validate.errors)}\n    body: ${r.body.slice(0, 300)}`);
    continue;
  }
  validated++;
}

for (const [path, item] of Object.entries(spec.paths)) {
  for (const method of ['get', 'post', 'put', 'delete', 'patch']) {
    if (!item[method] || (cover && !(item[method].tags || []).some((t) => cover.has(t)))) continue;
    if (!exercised.has(`${method} ${path}`))
      failures.push(`operation never exercised with success: ${method.toUpperCase()} ${path}`);
  }
}

if (failures.length) {
  console.error(`contract: ${failures.length} problem(s):\n` + failures.join('\n'));
  process.exit(1);
}
console.log(`contract: ${validated} JSON bodies valid, ${lines.length} responses, ${exercised.size} operations exercised`);
