// Prints the gzipped size of what each page loads, from Vite's manifest: the entry with its static imports
// (the shell every page needs) plus the page's own lazy chunk. Exits 1 when the first page passes the budget.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const dist = new URL('../dist/', import.meta.url).pathname;
const manifest = JSON.parse(readFileSync(join(dist, '.vite/manifest.json'), 'utf8'));
const BUDGET_KB = 300;

const gz = (file) => gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;

/** Every JS file a manifest entry needs, following static imports. */
function closure(key, seen = new Set()) {
  if (seen.has(key)) return seen;
  seen.add(key);
  for (const dep of manifest[key].imports ?? []) closure(dep, seen);
  return seen;
}
const files = (keys) => new Set([...keys].map((k) => manifest[k].file).filter((f) => f.endsWith('.js')));
const size = (set) => [...set].reduce((sum, f) => sum + gz(f), 0);
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} kB`;

const entryKey = Object.keys(manifest).find((k) => manifest[k].isEntry);
const shell = files(closure(entryKey));
const pages = Object.keys(manifest).filter((k) => k.startsWith('src/pages/'));

console.log('\nJavaScript per page, gzipped (shell + page chunk and its imports):');
const rows = pages.map((key) => {
  const all = new Set([...shell, ...files(closure(key))]);
  return [key.replace('src/pages/', ''), size(all)];
});
rows.sort((a, b) => a[0].localeCompare(b[0]));
for (const [name, bytes] of rows) console.log(`  ${name.padEnd(28)} ${kb(bytes)}`);
console.log(`  ${'(shell alone)'.padEnd(28)} ${kb(size(shell))}`);

const first = rows.find(([name]) => name === 'LoginPage.tsx')?.[1] ?? size(shell);
const dashboard = rows.find(([name]) => name === 'DashboardPage.tsx')?.[1] ?? 0;
console.log(`\nFirst page (sign-in): ${kb(first)} gzipped; dashboard after sign-in: ${kb(dashboard)} (budget ${BUDGET_KB} kB)`);
if (first > BUDGET_KB * 1024) {
  console.error('The first page is over budget.');
  process.exit(1);
}
