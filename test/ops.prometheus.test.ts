import test from 'ava';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { adminUrl, scrape } from './helpers/adminHttp.js';
import { metricNames } from './helpers/promText.js';
import { promtool, requirePrometheus, startPrometheus, type Prometheus } from './helpers/prometheus.js';
import { RawFtp, REPLY_MS } from './helpers/rawFtp.js';
import { pollUntil, REPO_ROOT, sink } from './helpers/serverProcess.js';
import { startTestServer, type TestServer } from './helpers/testServer.js';

/**
 * Prometheus for real: Debian's prometheus scrapes a DFOS admin listener (with the bearer
 * token) and its HTTP API returns what the transfers did; promtool accepts the exposition
 * and the shipped alert rules (and its rule tests fire them); every expression of the
 * shipped Grafana dashboard and alert rules uses metrics DFOS exposes and runs in Prometheus.
 */

const ALERTS = join(REPO_ROOT, 'docs', 'prometheus-alerts.yml');
const DASHBOARD = join(REPO_ROOT, 'docs', 'grafana-dashboard.json');
const TOKEN = 'prometheus-scrape-token-0123456789';

interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string }[];
}

async function dashboard(): Promise<{ schemaVersion: number; title: string; uid: string; panels: DashboardPanel[] }> {
  return JSON.parse(await readFile(DASHBOARD, 'utf8')) as never;
}

/** Each shipped alert's description (one double-quoted line each, in file order). */
async function alertDescriptions(): Promise<string[]> {
  const text = await readFile(ALERTS, 'utf8');
  return [...text.matchAll(/^\s+description: "(.+)"$/gm)].map((m) => m[1]!);
}

/** Every `expr:` of the shipped alert rules (one line each). */
async function alertExpressions(): Promise<string[]> {
  const text = await readFile(ALERTS, 'utf8');
  return [...text.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
}

/** The dashboard's expressions as Prometheus runs them (Grafana's variables filled in). */
async function dashboardExpressions(): Promise<string[]> {
  const panels = (await dashboard()).panels;
  return panels.flatMap((p) => (p.targets ?? []).map((target) => target.expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*')));
}

/** Metric names a PromQL expression uses (DFOS's and the default process metrics). */
function referencedMetrics(expr: string): string[] {
  return [...expr.matchAll(/\b(?:dfos|process|nodejs)_[a-z0-9_]+\b/g)].map((m) => m[0]);
}

/** A server with an admin token, a quota user (so every metric family has samples) and some traffic. */
async function busyServer(t: { teardown(fn: () => Promise<void>): void }): Promise<{ ts: TestServer; tokenFile: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-prom-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const tokenFile = join(dir, 'admin.token');
  await writeFile(tokenFile, `${TOKEN}\n`);
  await chmod(tokenFile, 0o600);
  const ts = await startTestServer({
    users: [
      { name: 'alice', password: 'alice-pw', quotaBytes: 10 * 1024 * 1024 },
      { name: 'bob', password: 'bob-pw' },
    ],
    config: { adminListen: '127.0.0.1:0', adminTokenFile: tokenFile },
  });
  t.teardown(() => ts.stop());
  return { ts, tokenFile };
}

/** Polls an instant query until `check` holds for its first value (bounded); returns that value. */
async function queryUntil(prometheus: Prometheus, expr: string, check: (value: number) => boolean, timeoutMs = 20_000): Promise<number | undefined> {
  let last: number | undefined;
  await pollUntil(async () => {
    const [first] = await prometheus.query(expr);
    last = first ? Number(first.value[1]) : undefined;
    return last !== undefined && check(last);
  }, timeoutMs, 250);
  return last;
}

test('Prometheus scrapes the admin listener with the token and its API returns the sessions and transfer counters', async (t) => {
  const { ts, tokenFile } = await busyServer(t);
  const target = adminUrl(ts.server).replace('http://', '');
  const prometheus = await startPrometheus({ target, tokenFile, ruleFiles: [ALERTS] });
  t.teardown(() => prometheus.stop());
  t.is(await queryUntil(prometheus, 'up{job="dfos"}', (v) => v === 1), 1, `first scrape (with the token) succeeds: ${prometheus.output().slice(-1500)}`);

  const client = await ts.client('alice', 'alice-pw');
  await client.uploadFrom(Readable.from([Buffer.alloc(2048, 'x')]), 'one.bin');
  await client.uploadFrom(Readable.from([Buffer.alloc(4096, 'y')]), 'two.bin');
  await client.downloadTo(sink().stream, 'one.bin');
  const failed = await RawFtp.connect(ts.port);
  await failed.command('USER bob');
  t.is((await failed.command('PASS nope', REPLY_MS)).code, 530);
  failed.close();

  t.is(await queryUntil(prometheus, 'dfos_transfers_total{direction="upload",result="ok"}', (v) => v === 2), 2);
  t.is(await queryUntil(prometheus, 'dfos_transfers_total{direction="download",result="ok"}', (v) => v === 1), 1);
  t.is(await queryUntil(prometheus, 'dfos_transfer_bytes_total{direction="upload"}', (v) => v === 6144), 6144);
  t.is(await queryUntil(prometheus, 'dfos_logins_total{result="failed"}', (v) => v === 1), 1);
  t.is(await queryUntil(prometheus, 'dfos_sessions', (v) => v === 1), 1, 'the basic-ftp client is still connected');
  t.is(await queryUntil(prometheus, 'dfos_quota_used_bytes{user="alice"}', (v) => v === 6144), 6144);
  const scrapes = await queryUntil(prometheus, 'count_over_time(dfos_sessions[5m])', (v) => v >= 2);
  t.true((scrapes ?? 0) >= 2, `scraped at least twice (${scrapes})`);

  // The shipped rules loaded and evaluate without error against the real series.
  const healthy = await pollUntil(async () => {
    const data = (await prometheus.api('/api/v1/rules')) as { groups: { name: string; rules: { name: string; health: string; lastError?: string }[] }[] };
    const rules = data.groups.find((g) => g.name === 'dfos')?.rules ?? [];
    return rules.length === 3 && rules.every((r) => r.health === 'ok') ? rules.map((r) => r.name) : undefined;
  }, 15_000, 250);
  t.deepEqual(healthy, ['DfosFailedLoginSpike', 'DfosPassiveRangeNearlyFull', 'DfosPassiveRangeFull']);

  // Every dashboard and alert expression is valid PromQL on this Prometheus.
  for (const expr of [...(await dashboardExpressions()), ...(await alertExpressions())]) {
    await t.notThrowsAsync(prometheus.query(expr), expr);
  }
  const [sessions] = await prometheus.query((await dashboardExpressions())[0]!);
  t.is(Number(sessions?.value[1]), 1, 'the dashboard\'s first panel shows the open session');
});

test('promtool check metrics accepts the exposition after traffic', async (t) => {
  await requirePrometheus();
  const { ts } = await busyServer(t);
  const client = await ts.client('alice', 'alice-pw');
  await client.uploadFrom(Readable.from([Buffer.from('lint me\n')]), 'lint.txt');
  await client.downloadTo(sink().stream, 'lint.txt');
  const text = await scrape(ts.server, TOKEN);
  t.regex(text, /^dfos_quota_used_bytes\{user="alice"\} 8$/m);
  const result = await promtool(['check', 'metrics'], text);
  t.is(result.code, 0, `${result.stdout}${result.stderr}`);
  t.is(`${result.stdout}${result.stderr}`.trim(), '', 'no lint warnings');
});

test('the shipped alert rules pass promtool check rules, and promtool test rules fires each one (and only then)', async (t) => {
  await requirePrometheus();
  const checked = await promtool(['check', 'rules', ALERTS]);
  t.is(checked.code, 0, checked.stdout + checked.stderr);
  t.regex(checked.stdout, /SUCCESS: 3 rules found/);
  const dir = await mkdtemp(join(tmpdir(), 'dfos-rules-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const node = 'instance="ftp1:9121",job="dfos"';
  const quiet = 'instance="ftp2:9121",job="dfos"';
  const any = 'instance="ftp3:9121",job="dfos"';
  const [loginSpike, nearlyFull, full] = await alertDescriptions();
  const alert = (severity: string, summary: string, description: string | undefined) => ({
    exp_labels: { severity, instance: 'ftp1:9121', job: 'dfos' },
    exp_annotations: { summary, description },
  });
  const tests = {
    rule_files: [ALERTS],
    evaluation_interval: '1m',
    tests: [
      {
        interval: '1m',
        input_series: [
          // ftp1: 30 failed logins a minute, 95 of 100 passive ports taken, the range full once.
          { series: `dfos_logins_total{result="failed",${node}}`, values: '0+30x15' },
          { series: `dfos_passive_ports_in_use{${node}}`, values: '95x15' },
          { series: `dfos_passive_ports_range_size{${node}}`, values: '100x15' },
          { series: `dfos_passive_ports_exhausted_total{${node}}`, values: '0 0 0 0 0 0 0 0 1 1 1 1 1 1 1 1' },
          // ftp2: normal traffic.
          { series: `dfos_logins_total{result="failed",${quiet}}`, values: '0+2x15' },
          { series: `dfos_passive_ports_in_use{${quiet}}`, values: '10x15' },
          { series: `dfos_passive_ports_range_size{${quiet}}`, values: '100x15' },
          { series: `dfos_passive_ports_exhausted_total{${quiet}}`, values: '0x15' },
          // ftp3: passive ports from the whole system range (size 0): never "nearly full".
          { series: `dfos_passive_ports_in_use{${any}}`, values: '500x15' },
          { series: `dfos_passive_ports_range_size{${any}}`, values: '0x15' },
        ],
        alert_rule_test: [
          {
            eval_time: '10m',
            alertname: 'DfosFailedLoginSpike',
            exp_alerts: [alert('warning', 'DFOS ftp1:9121: 0.50 failed logins per second', loginSpike)],
          },
          { eval_time: '1m', alertname: 'DfosFailedLoginSpike', exp_alerts: [] },
          {
            eval_time: '10m',
            alertname: 'DfosPassiveRangeNearlyFull',
            exp_alerts: [alert('warning', 'DFOS ftp1:9121: 95% of the passive port range in use', nearlyFull)],
          },
          {
            eval_time: '9m',
            alertname: 'DfosPassiveRangeFull',
            exp_alerts: [alert('critical', 'DFOS ftp1:9121: passive port range full, data connections refused', full)],
          },
          { eval_time: '7m', alertname: 'DfosPassiveRangeFull', exp_alerts: [] },
        ],
      },
    ],
  };
  const file = join(dir, 'alerts.test.yml');
  await writeFile(file, JSON.stringify(tests, null, 2)); // JSON is YAML
  const result = await promtool(['test', 'rules', file]);
  t.is(result.code, 0, result.stdout + result.stderr);
});

test('the shipped Grafana dashboard: valid layout, and every expression uses metrics the server exposes', async (t) => {
  const board = await dashboard();
  t.is(board.title, 'DFOS');
  t.true(board.schemaVersion >= 36);
  const ids = board.panels.map((p) => p.id);
  t.is(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of board.panels) {
    t.true(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the 24-column grid`);
    if (p.type !== 'row') t.true((p.targets ?? []).length > 0 && p.targets!.every((x) => x.expr.includes('$instance')), `${p.title} has queries filtered by $instance`);
  }
  const titles = board.panels.map((p) => p.title);
  for (const wanted of ['Sessions', 'Logins per second', 'Transfers per second', 'Throughput', 'Transfer duration', 'Replies by class', 'Passive ports', 'Bans', 'Quota usage']) {
    t.true(titles.includes(wanted), wanted);
  }
  const ts = await startTestServer({ config: { adminListen: '127.0.0.1:0' } });
  t.teardown(() => ts.stop());
  const exposed = metricNames(await scrape(ts.server));
  const used = new Set([...(await dashboardExpressions()), ...(await alertExpressions())].flatMap(referencedMetrics));
  t.true(used.size >= 15, `the dashboard and alerts use ${used.size} metrics`);
  for (const name of used) t.true(exposed.has(name), `${name} is exposed`);
});
