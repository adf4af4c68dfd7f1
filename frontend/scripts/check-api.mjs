// Checks every call in src/api/index.ts against the gateway's merged OpenAPI: each method and path must exist.
//   node scripts/check-api.mjs [http://127.0.0.1:8000/api/openapi.json | openapi.json]
import { readFileSync } from 'node:fs';

const source = process.argv[2] ?? `${process.env.E2E_BASE_URL ?? 'http://127.0.0.1:8000'}/api/openapi.json`;
const spec = source.startsWith('http') ? await (await fetch(source)).json() : JSON.parse(readFileSync(source, 'utf8'));
const client = readFileSync(new URL('../src/api/index.ts', import.meta.url), 'utf8');

const norm = (path) => path.replace(/\$\{[^}]+\}|\{[^}]+\}/g, '{}').replace(/\/$/, '');
const known = new Set();
for (const [path, ops] of Object.entries(spec.paths)) {
  for (const method of Object.keys(ops)) known.add(`${method.toUpperCase()} ${norm(path)}`);
}

// request<T>('/path' | `/path/${id}`, { method: 'POST', ... }), upload<T>('/path', ...), download(`/path`, ...):
// the method is read inside the call's own parentheses.
function argumentsAt(open) {
  let depth = 0;
  for (let i = open; i < client.length; i += 1) {
    if (client[i] === '(') depth += 1;
    else if (client[i] === ')' && --depth === 0) return client.slice(open, i + 1);
  }
  return client.slice(open);
}
const calls = [];
const pattern = /\b(request|upload|download)(?:<[^>]*(?:<[^>]*>[^>]*)*>)?\(\s*(['`])([^'`]+)\2/g;
for (const match of client.matchAll(pattern)) {
  const [whole, kind, , path] = match;
  const args = argumentsAt(match.index + whole.indexOf('('));
  const method = kind === 'upload' ? 'POST' : kind === 'download' ? 'GET' : (/method:\s*'(\w+)'/.exec(args)?.[1] ?? 'GET');
  calls.push(`${method} ${norm(`/api${path}`)}`);
}
const missing = calls.filter((call) => !known.has(call));
console.log(`${calls.length} client calls checked against ${source}: ${calls.length - missing.length} found`);
for (const call of missing) console.log(`  not in the OpenAPI: ${call}`);
process.exit(missing.length ? 1 : 0);
