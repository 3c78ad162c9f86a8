/**
 * Issue 7 row 1 reproduction, "unauthenticated out-of-memory crash": starts the built
 * server (`node dist/dfos.cjs serve`, login timeout off so nothing cuts the floods),
 * opens N connections that each pipeline C NOOPs before login (and read their replies,
 * so the server is CPU-bound, reading faster than it can run commands), samples the
 * server's RSS from /proc/PID/status every second, and every 10 s checks that a fresh
 * client is greeted and logs in. Prints the peak RSS and the result, then ends the server
 * it started (by PID). Loopback only; every loop is bounded.
 *
 * Run: `npx tsc -p tsconfig.json && npx tsx bench/flood.ts [conns=800] [count=100000] [seconds=60]`
 * (FLOOD_NODE_OPTIONS is passed to the server as NODE_OPTIONS, e.g. `--max-semi-space-size=1`
 * to see how much of the RSS growth is only V8 young-generation sizing).
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { floodPayload, NoopFlood } from '../test/helpers/noopFlood.js';
import { RawFtp } from '../test/helpers/rawFtp.js';
import { spawnServer } from '../test/helpers/serverProcess.js';

const conns = Number(process.argv[2] ?? 800);
const count = Number(process.argv[3] ?? 100_000);
const seconds = Number(process.argv[4] ?? 60);
/** How long a probe client waits for each reply. */
const PROBE_MS = 20_000;

async function rssMiB(pid: number): Promise<number | undefined> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
  } catch {
    return undefined; // the process is gone
  }
}

/** Each flood connection uses a descriptor here and one in the server. */
async function checkFileLimit(): Promise<void> {
  const limits = await readFile('/proc/self/limits', 'utf8');
  const soft = Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? 0);
  if (soft < conns + 100) throw new Error(`open file limit ${soft} is too low for ${conns} connections: run \`ulimit -n ${conns * 2 + 200}\` first`);
}

/** A fresh client: greeted and logged in? Returns how long it took, or the error. */
async function probe(port: number): Promise<string> {
  const started = Date.now();
  try {
    const raw = await RawFtp.login(port, 'alice', 'alice-pw', '127.0.0.1', PROBE_MS);
    raw.close();
    return `greeted and logged in (${Date.now() - started} ms)`;
  } catch (err) {
    return `FAILED after ${Date.now() - started} ms: ${(err as Error).message.slice(0, 120)}`;
  }
}

async function main(): Promise<void> {
  await checkFileLimit();
  // The server needs a descriptor per connection too: it inherits this process's limit.
  const server = await spawnServer({ args: ['--login-timeout', '0', '--max-sessions', '0', '--max-sessions-per-ip', '0'], env: { NODE_OPTIONS: process.env.FLOOD_NODE_OPTIONS } });
  const pid = server.child.pid!;
  const floods: NoopFlood[] = [];
  let peak = 0;
  let lastRss = 0;
  const probes: string[] = [];
  try {
    const baseline = (await rssMiB(pid)) ?? 0;
    console.log(`server pid ${pid} port ${server.port}, RSS ${baseline.toFixed(0)} MiB; ${conns} connections × ${count} NOOPs for ${seconds} s`);
    const payload = floodPayload(count);
    const started = Date.now();
    const sampler = setInterval(() => {
      void rssMiB(pid).then((rss) => {
        if (rss === undefined) return;
        lastRss = rss;
        peak = Math.max(peak, rss);
      });
    }, 1000);
    try {
      // Open the connections 50 at a time (the listen backlog is bounded).
      for (let i = 0; i < conns && server.running(); i += 50) {
        const batch = Array.from({ length: Math.min(50, conns - i) }, () => NoopFlood.open(server.port, count, payload).catch(() => undefined));
        for (const f of await Promise.all(batch)) if (f) floods.push(f);
      }
      console.log(`${floods.length} flood connections open after ${Date.now() - started} ms`);
      for (let tick = 1; tick * 10 <= seconds && server.running(); tick++) {
        await sleep(Math.max(0, started + tick * 10_000 - Date.now()));
        const result = server.running() ? await probe(server.port) : 'server exited';
        probes.push(result);
        const ok = floods.reduce((n, f) => n + f.ok, 0);
        console.log(`t=${Math.round((Date.now() - started) / 1000)} s RSS ${lastRss.toFixed(0)} MiB (peak ${peak.toFixed(0)}), NOOP replies received ${ok}, floods done ${floods.filter((f) => f.done).length}/${floods.length}; new client: ${result}`);
      }
    } finally {
      clearInterval(sampler);
    }
    const served = probes.length > 0 && probes.every((p) => p.startsWith('greeted'));
    const wrong = floods.filter((f) => f.unexpected).length;
    console.log(
      `RESULT peak RSS ${peak.toFixed(0)} MiB (baseline ${baseline.toFixed(0)}); new clients served during the flood: ${served ? 'yes' : 'NO'} (${probes.filter((p) => p.startsWith('greeted')).length}/${probes.length}); server ${server.running() ? 'still running' : `exited: ${server.stderr().split('\n').filter(Boolean).slice(-2).join(' | ')}`}; floods with a wrong reply: ${wrong}`,
    );
  } finally {
    for (const f of floods) f.close();
    await server.cleanup(); // SIGKILL to this child's PID if still running, then its temp dir
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
