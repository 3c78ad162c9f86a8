import test from 'ava';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminRequest } from './helpers/adminHttp.js';
import { renderPage } from './helpers/chromium.js';
import { startRawTransfer } from './helpers/dataTransfer.js';
import { RawFtp } from './helpers/rawFtp.js';
import { pollUntil, REPO_ROOT, spawnServer } from './helpers/serverProcess.js';
import type { StatusSnapshot } from '../src/status/StatusBoard.js';

// The live status page (issue 12): served by the admin listener, looked at in a real
// browser (Debian's headless Chromium) while a transfer runs. The screenshot is kept in
// test-artifacts/ for a person to look at.

const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');

test('the status page shows sessions, a running download with progress and rate, and failed logins, in headless Chromium', async (t) => {
  t.timeout(120_000);
  const proc = await spawnServer();
  t.teardown(() => proc.cleanup());
  const base = proc.adminUrl!;
  t.truthy(base, 'the admin listener is on');
  await mkdir(join(proc.storage, 'alice'), { recursive: true });
  await writeFile(join(proc.storage, 'alice', 'big report.bin'), Buffer.alloc(256 << 20, 7));

  // A download the client does not read: it stays running, part-way.
  const raw = await RawFtp.login(proc.port, 'alice', 'alice-pw');
  t.teardown(() => raw.close());
  const { data } = await startRawTransfer(raw, 'RETR', 'big report.bin');
  data.pause();
  t.teardown(() => data.destroy());
  const idle = await RawFtp.login(proc.port, 'bob', 'bob-pw');
  t.teardown(() => idle.close());
  const intruder = await RawFtp.connect(proc.port);
  t.teardown(() => intruder.close());
  await intruder.command('USER mallory<b>');
  t.is((await intruder.command('PASS nope')).code, 530);

  const snap = await pollUntil(async () => {
    const reply = await adminRequest(base, '/api/status');
    const s = JSON.parse(reply.body) as StatusSnapshot;
    return s.transfers.length === 1 && s.transfers[0]!.bytes > 0 && s.failedLogins.length === 1 ? s : undefined;
  }, 10_000);
  t.truthy(snap, 'the JSON shows the transfer and the failed login');
  t.like(snap!.transfers[0], { user: 'alice', direction: 'download', path: '/big report.bin', size: 256 << 20 });
  t.deepEqual(snap!.sessions.map((s) => s.user).sort(), ['alice', 'bob', undefined]);
  t.like(snap!.failedLogins[0], { user: 'mallory<b>', client: '127.0.0.1', reason: 'unknown-user' });

  const page = await adminRequest(base, '/');
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/);
  t.regex(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  t.regex(page.body, /mallory&lt;b&gt;/, 'server-rendered, escaped');

  await mkdir(ARTIFACTS, { recursive: true });
  const screenshot = join(ARTIFACTS, 'status-page.png');
  const dom = await renderPage(`${base}/`, { screenshot, settleMs: 4000, height: 1100 });
  t.regex(dom, /<body[^>]*data-live="yes"/, 'the page script ran and refreshed from /api/status');
  t.regex(dom, /<tbody id="transfers"><tr><td>alice<\/td><td>↓ download<\/td><td class="path">\/big report\.bin<\/td><td><progress max="100" value="\d+"><\/progress> \d+% of 256 MiB<\/td><td>[\d.]+ [KMG]?i?B\/s<\/td><\/tr><\/tbody>/);
  t.regex(dom, /<td>alice<\/td><td>127\.0\.0\.1<\/td><td[^>]*>\d+s<\/td><td><code>RETR<\/code><\/td>/, 'alice runs RETR');
  t.regex(dom, /<td>bob<\/td><td>127\.0\.0\.1<\/td><td[^>]*>\d+s<\/td><td><span class="muted">idle<\/span><\/td>/);
  t.regex(dom, /<tbody id="failed-logins"><tr><td>\d\d:\d\d:\d\d<\/td><td>mallory&lt;b&gt;<\/td><td>127\.0\.0\.1<\/td><td>unknown-user<\/td><\/tr>/);
  t.regex(dom, /<div id="throughput"><svg /);
  t.notRegex(dom, /not updating/);
  const png = await stat(screenshot);
  t.true(png.size > 20_000, `a real screenshot (${png.size} bytes) in test-artifacts/status-page.png`);
});

test('the status page and its JSON need the token when there is one; /healthz does not', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-token-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'admin.token');
  await writeFile(file, 'status-page-token-0123456789\n', { mode: 0o600 });
  const server = await spawnServer({ args: ['--admin-token-file', file] });
  t.teardown(() => server.cleanup());
  for (const path of ['/', '/api/status', '/status.js', '/status.css']) {
    t.is((await adminRequest(server.adminUrl!, path)).status, 401, path);
    t.is((await adminRequest(server.adminUrl!, path, { token: 'status-page-token-0123456789' })).status, 200, path);
  }
  t.is((await adminRequest(server.adminUrl!, '/healthz')).status, 200);
});
