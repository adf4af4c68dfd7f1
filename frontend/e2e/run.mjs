// End-to-end run in a real browser (Debian's chromium driven by playwright-core) against a running platform.
//
//   E2E_BASE_URL=http://127.0.0.1:8000 E2E_USERNAME=admin E2E_PASSWORD=... npm run e2e
//
// Defaults: the local run's gateway on port 8000 and its development admin (from var/development-secrets.env).
// Each check is reported as it runs; screenshots, axe reports and timings land in e2e/output/. Exit code 1 when
// a check fails. See frontend/README.md for what is covered; CI runs it through tests/e2e/test_browser.py.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
/* global document, window -- functions passed to page.evaluate run in the browser */
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = join(here, 'output');
mkdirSync(out, { recursive: true });

function devSecret(key) {
  const file = join(process.env.VAR_DIR ?? join(root, 'var'), 'development-secrets.env');
  if (!existsSync(file)) return undefined;
  const line = readFileSync(file, 'utf8').split('\n').find((l) => l.startsWith(`${key}=`));
  return line?.slice(key.length + 1);
}

const BASE = (process.env.E2E_BASE_URL ?? 'http://127.0.0.1:8000').replace(/\/$/, '');
const USERNAME = process.env.E2E_USERNAME ?? process.env.BOOTSTRAP_ADMIN_USERNAME ?? 'admin';
const PASSWORD = process.env.E2E_PASSWORD ?? process.env.BOOTSTRAP_ADMIN_PASSWORD ?? devSecret('BOOTSTRAP_ADMIN_PASSWORD');
const VCF = process.env.E2E_VCF ?? join(root, 'tests', 'data', 'sim-1mb', 'target.vcf.gz');
const axeSource = readFileSync(join(here, '..', 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

const results = [];
const timings = {};
async function check(name, fn) {
  const started = performance.now();
  try {
    const note = await fn();
    results.push({ name, ok: true, note });
    console.log(`ok    ${name}${note ? ` — ${note}` : ''} (${Math.round(performance.now() - started)} ms)`);
  } catch (error) {
    results.push({ name, ok: false, note: String(error?.message ?? error) });
    console.log(`FAIL  ${name} — ${String(error?.message ?? error).split('\n')[0]}`);
  }
}
function skip(name, why) {
  results.push({ name, ok: true, skipped: true, note: why });
  console.log(`skip  ${name} — ${why}`);
}

/** Waits until the page's h1 is there and no skeleton is busy. */
async function settled(page, title) {
  await page.getByRole('heading', { level: 1, name: title }).waitFor({ timeout: 15000 });
  await page.waitForFunction(() => document.querySelectorAll('[aria-busy="true"]').length === 0, null, { timeout: 15000 });
}

/** axe-core on the page; fails on serious or critical violations, writes the full report. */
async function axe(page, name) {
  await page.addScriptTag({ content: axeSource });
  const report = await page.evaluate(async () =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'best-practice'] } }),
  );
  writeFileSync(join(out, `axe-${name}.json`), JSON.stringify(report.violations, null, 2));
  const bad = report.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) throw new Error(`axe: ${bad.map((v) => `${v.id} (${v.impact}, ${v.nodes.length} nodes)`).join(', ')}`);
  return `axe: ${report.violations.length} minor/moderate, 0 serious/critical`;
}

async function api(path, token, init = {}) {
  const response = await fetch(`${BASE}/api${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) },
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

if (!PASSWORD) {
  console.error('No password: set E2E_PASSWORD (or run scripts/run.sh once so var/development-secrets.env exists).');
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
const page = await context.newPage();
let accessToken = null;
page.on('request', (request) => {
  const auth = request.headers().authorization;
  if (auth?.startsWith('Bearer ')) accessToken = auth.slice(7);
});

await check('sign-in page is accessible', async () => {
  await page.goto(`${BASE}/login`);
  await settled(page, 'Sign in');
  await page.screenshot({ path: join(out, 'login.png'), fullPage: true });
  return axe(page, 'login');
});

await check('sign in and see the dashboard data', async () => {
  await page.getByLabel('Username or e-mail').fill(USERNAME);
  await page.getByLabel('Password').fill(PASSWORD);
  const started = performance.now();
  await page.getByRole('button', { name: 'Sign in' }).click();
  await settled(page, 'Dashboard');
  await page.getByRole('region', { name: 'My jobs by status' }).waitFor();
  timings.signInToDashboardDataMs = Math.round(performance.now() - started);
  return `dashboard data ${timings.signInToDashboardDataMs} ms after pressing Sign in`;
});

const pages = [
  ['dashboard', '/', 'Dashboard'],
  ['services', '/services', 'Services'],
  ['jobs', '/jobs', 'Jobs'],
  ['new-job', '/jobs/new', 'New job'],
  ['notifications', '/notifications', 'Notifications'],
  ['settings', '/settings', 'Settings'],
  ['admin-users', '/admin/users', 'Users'],
  ['admin-audit', '/admin/audit', 'Audit log'],
  ['admin-monitoring', '/admin/monitoring', 'Monitoring'],
];
for (const [name, path, title] of pages) {
  await check(`${name}: loads, screenshot, axe`, async () => {
    const started = performance.now();
    await page.goto(`${BASE}${path}`);
    await settled(page, title);
    timings[`${name}Ms`] = Math.round(performance.now() - started);
    await page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
    return axe(page, name);
  });
}

await check('phone width: dashboard usable with the menu', async () => {
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 375, height: 812 });
  await phone.goto(`${BASE}/`);
  await settled(phone, 'Dashboard');
  await phone.getByRole('button', { name: 'Open navigation' }).click();
  await phone.getByRole('link', { name: 'Jobs', exact: true }).click();
  await settled(phone, 'Jobs');
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await phone.screenshot({ path: join(out, 'phone-jobs.png'), fullPage: true });
  await phone.close();
  if (overflow > 0) throw new Error(`page is ${overflow}px wider than the phone`);
});

let apiToken = null;
await check('create an API token and use it from a script', async () => {
  await page.goto(`${BASE}/settings`);
  await settled(page, 'Settings');
  await page.getByLabel('Token name').fill(`e2e ${randomUUID().slice(0, 8)}`);
  await page.getByRole('button', { name: 'Create token' }).click();
  apiToken = (await page.getByTestId('new-token').textContent())?.trim();
  const me = await api('/auth/user', apiToken);
  if (me.status !== 200 || me.body.username !== USERNAME) throw new Error(`GET /api/auth/user with the token: ${me.status}`);
  return 'GET /api/auth/user with the new token: 200';
});

await check('an admin deactivates a user, who is then signed out with a clear message', async () => {
  const name = `e2e${randomUUID().slice(0, 8)}`;
  const password = `Pw-${randomUUID()}`;
  const created = await api('/users', accessToken, {
    method: 'POST',
    body: JSON.stringify({ username: name, email: `${name}@example.org`, password, roles: ['researcher'] }),
  });
  if (created.status !== 201 && created.status !== 200) throw new Error(`POST /api/users: ${created.status}`);
  const other = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const victim = await other.newPage();
  await victim.goto(`${BASE}/login`);
  await victim.getByLabel('Username or e-mail').fill(name);
  await victim.getByLabel('Password').fill(password);
  await victim.getByRole('button', { name: 'Sign in' }).click();
  await settled(victim, 'Dashboard');

  await page.goto(`${BASE}/admin/users`);
  await settled(page, 'Users');
  await page.getByLabel('Search users').fill(name);
  await page.getByRole('button', { name: `Deactivate ${name}` }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Deactivate' }).click();
  await page.getByText(`${name} was deactivated.`).waitFor();

  // The user's next request is refused, renewal too, and the sign-in page says why.
  await victim.getByRole('link', { name: 'Jobs', exact: true }).click();
  await victim.getByText('Your session has ended. Please sign in again.').waitFor({ timeout: 15000 });
  await victim.screenshot({ path: join(out, 'session-ended.png') });
  await other.close();
});

let unreadBefore = 0;
async function unreadOnBell() {
  const label = await page.getByRole('link', { name: /^Notifications/ }).first().getAttribute('aria-label');
  return Number(/(\d+) unread/.exec(label ?? '')?.[1] ?? 0);
}

// The job path needs a registered service with a panel. E2E_MICHIGAN_URL (+ E2E_MICHIGAN_TOKEN) registers a
// Michigan server, e.g. the fake: `python -m tests.fakes.michigan --port 18123 --token T --job-run-time 5`.
if (process.env.E2E_MICHIGAN_URL && accessToken) {
  const base_url = process.env.E2E_MICHIGAN_URL;
  const known = await api('/services', accessToken);
  if (!(known.body?.items ?? []).some((s) => s.base_url.replace(/\/$/, '') === base_url.replace(/\/$/, ''))) {
    const created = await api('/services', accessToken, {
      method: 'POST',
      body: JSON.stringify({
        name: 'Michigan (e2e)',
        slug: `michigan-e2e-${randomUUID().slice(0, 6)}`,
        api_type: 'michigan',
        base_url,
        credential: process.env.E2E_MICHIGAN_TOKEN ?? 'T',
      }),
    });
    await api(`/services/${created.body?.id}/sync`, accessToken, { method: 'POST' });
    console.log(`seeded service ${created.body?.slug} (${created.status}) with its panels`);
  }
}
const services = accessToken ? await api('/services', accessToken) : { status: 0, body: null };
// Every active service, or only those of E2E_SERVICE_IDS (comma-separated) when a test registered its own.
const chosen = process.env.E2E_SERVICE_IDS?.split(',').map(Number);
const usable = (services.body?.items ?? []).filter((s) => s.is_active && (!chosen || chosen.includes(s.id)));
if (!usable.length || !existsSync(VCF)) {
  skip('upload a VCF, submit, watch it complete, download and compare the checksum', usable.length ? `no VCF at ${VCF}` : 'no service registered');
} else {
  for (const service of usable) {
    await check(`job on ${service.name}: upload, submit, complete live, download with matching checksum`, async () => {
      await page.goto(`${BASE}/jobs/new`);
      await settled(page, 'New job');
      await page.getByRole('combobox', { name: 'Service' }).click();
      await page.getByRole('option', { name: new RegExp(`^${service.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`) }).click();
      await page.getByRole('combobox', { name: 'Reference panel' }).click();
      await page.getByRole('option').first().click();
      await page.getByLabel('Job name').fill(`e2e ${service.slug} ${Date.now()}`);
      await page.getByLabel('VCF files').setInputFiles(VCF);
      await page.getByText(/samples · chromosomes/).waitFor({ timeout: 60000 });
      unreadBefore = await unreadOnBell();
      await page.getByRole('button', { name: /^Submit/ }).click();
      await page.waitForURL(/\/jobs\/[^/]+$/, { timeout: 30000 });
      // No reload from here: the page must follow the job by itself.
      await page.getByRole('table', { name: 'Results' }).waitFor({ timeout: 15 * 60000 });
      const link = page.getByRole('button', { name: /^Download / }).first();
      const expected = (await page.getByRole('table', { name: 'Results' }).locator('td').nth(2).textContent())?.trim();
      const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
      const file = await download.path();
      const actual = createHash('sha256').update(readFileSync(file)).digest('hex');
      if (expected && actual !== expected) throw new Error(`checksum ${actual} ≠ shown ${expected}`);
      await page.screenshot({ path: join(out, `job-${service.slug}.png`), fullPage: true });
      return `sha256 ${actual.slice(0, 12)}… matches`;
    });

    await check(`job on ${service.name}: notifications arrived live on the bell`, async () => {
      // The page was never reloaded since submitting, so a higher count came over the WebSocket (or the poll).
      const deadline = Date.now() + 30000;
      let now = await unreadOnBell();
      while (now <= unreadBefore && Date.now() < deadline) {
        await page.waitForTimeout(500);
        now = await unreadOnBell();
      }
      if (now <= unreadBefore) throw new Error(`unread stayed at ${now}`);
      return `unread ${unreadBefore} → ${now} without a reload`;
    });

    await check(`job on ${service.name}: cancel a running job`, async () => {
      await page.goto(`${BASE}/jobs/new`);
      await settled(page, 'New job');
      await page.getByRole('combobox', { name: 'Service' }).click();
      await page.getByRole('option', { name: new RegExp(`^${service.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`) }).click();
      await page.getByRole('combobox', { name: 'Reference panel' }).click();
      await page.getByRole('option').first().click();
      await page.getByLabel('Job name').fill(`e2e cancel ${Date.now()}`);
      await page.getByLabel('VCF files').setInputFiles(VCF);
      await page.getByText(/samples · chromosomes/).waitFor({ timeout: 60000 });
      await page.getByRole('button', { name: /^Submit/ }).click();
      await page.waitForURL(/\/jobs\/[^/]+$/, { timeout: 30000 });
      await page.getByRole('button', { name: 'Cancel job' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Cancel job' }).click();
      await page.locator('.MuiChip-label', { hasText: /^cancelled$/ }).first().waitFor({ timeout: 60000 });
      await page.screenshot({ path: join(out, `job-cancelled-${service.slug}.png`), fullPage: true });
    });
  }
}

writeFileSync(join(out, 'timings.json'), JSON.stringify(timings, null, 2));
writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2));
await browser.close();
const failed = results.filter((r) => !r.ok);
console.log(`\n${results.length - failed.length} passed, ${failed.length} failed; timings ${JSON.stringify(timings)}`);
console.log(`screenshots and axe reports in ${out}`);
process.exit(failed.length ? 1 : 0);
