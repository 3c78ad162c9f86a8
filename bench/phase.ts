/**
 * One timed, verified benchmark phase (one direction of one measurement) and how the
 * benchmarks print them: a table per server and a side-by-side summary. A Meter watches
 * the server while a phase runs: its peak resident memory and CPU time, from /proc, either
 * of one process (DFOS) or summed over a set of processes found by their command line
 * (vsftpd: a listener plus processes per session).
 */
import { readdir, readFile } from 'node:fs/promises';
import type { Client } from 'basic-ftp';
import { collector, cpuSeconds, digest, MIB, rssKiB, sampleRss, withTimeout } from './benchServer.js';

/** One timed direction of one measurement. */
export interface Phase {
  name: string;
  mib: number;
  seconds: number;
  /** Peak resident memory of the server during the phase, MiB (undefined: not measured). */
  peakRssMiB?: number;
  /** Server CPU seconds during the phase, user + system (undefined: not measured). */
  cpuSeconds?: number;
  verified: boolean;
}

/** What a Meter reports for one phase. */
export interface MeterReading {
  peakRssKiB?: number;
  cpuSeconds?: number;
}

/** Starts watching the server; the returned stop() ends the watch with its reading. */
export type Meter = () => Promise<{ stop(): Promise<MeterReading> }>;

/** A Meter for one process: VmRSS sampled (plus VmHWM, see sampleRss) and its CPU time. */
export function pidMeter(pid: number): Meter {
  return async () => {
    const sampler = await sampleRss(pid);
    const cpu0 = await cpuSeconds(pid);
    return {
      async stop() {
        const peakRssKiB = await sampler.stop();
        const cpu1 = await cpuSeconds(pid);
        return { peakRssKiB, cpuSeconds: cpu1[0] + cpu1[1] - cpu0[0] - cpu0[1] };
      },
    };
  };
}

/** PIDs of the processes whose command line (NUL-separated arguments) contains `needle`. */
export async function pidsWithCmdline(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'latin1').catch(() => '');
    if (cmdline.includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * A Meter for a changing set of processes (those whose command line contains `needle`),
 * sampled every `intervalMs`: the peak of the SUM of their VmRSS (shared pages, e.g. the
 * program and its libraries, count once per process, so this overstates the memory really
 * used), and their CPU time: per PID the last value seen minus its value at the start (0
 * for processes started during the phase); a process ending between two samples loses
 * its last interval.
 */
export function processSetMeter(needle: string, intervalMs = 100): Meter {
  return async () => {
    const baseline = new Map<number, number>();
    const last = new Map<number, number>();
    let peak = 0;
    const sample = async (): Promise<void> => {
      let sum = 0;
      for (const pid of await pidsWithCmdline(needle)) {
        const [kib, cpu] = await Promise.all([rssKiB(pid).catch(() => 0), cpuSeconds(pid).catch(() => undefined)]);
        sum += kib;
        if (cpu !== undefined) last.set(pid, cpu[0] + cpu[1]);
      }
      peak = Math.max(peak, sum);
    };
    await sample();
    for (const [pid, cpu] of last) baseline.set(pid, cpu);
    let busy: Promise<void> = Promise.resolve();
    let sampling = false;
    const timer = setInterval(() => {
      if (sampling) return; // a slow /proc scan: skip a tick rather than pile up
      sampling = true;
      busy = sample().finally(() => (sampling = false));
    }, intervalMs);
    return {
      async stop() {
        clearInterval(timer);
        await busy;
        await sample();
        let cpu = 0;
        for (const [pid, value] of last) cpu += value - (baseline.get(pid) ?? 0);
        return { peakRssKiB: peak, cpuSeconds: cpu };
      },
    };
  };
}

/**
 * Runs `work` (bounded by `timeoutMs`) with the server watched by `meter`; `work` resolves
 * with a check run after the clock stops (hashing then does not compete with the server).
 * Throws if the check fails.
 */
export async function timed(meter: Meter, name: string, mib: number, timeoutMs: number, work: () => Promise<() => boolean>): Promise<Phase> {
  const watch = await meter();
  const t0 = performance.now();
  let verify: () => boolean;
  let reading: MeterReading = {};
  try {
    verify = await withTimeout(work(), timeoutMs, name);
  } finally {
    reading = await watch.stop(); // also when the phase fails
  }
  const seconds = (performance.now() - t0) / 1000;
  const verified = verify();
  if (!verified) throw new Error(`${name}: the bytes read back differ from the bytes sent`);
  return {
    name,
    mib,
    seconds,
    peakRssMiB: reading.peakRssKiB === undefined ? undefined : Math.round(reading.peakRssKiB / 1024),
    cpuSeconds: reading.cpuSeconds,
    verified,
  };
}

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const mibps = (p: Phase): string => (p.mib / p.seconds).toFixed(1);

/** The results for one server (or backend). */
export interface RunResult {
  label: string;
  idleRssMiB?: number;
  phases: Phase[];
  /** Printed under the table (e.g. how memory was measured). */
  note?: string;
  error?: string;
}

/** One server's phases: MiB, seconds, MiB/s, peak RSS, server CPU, check. */
export function phaseTable(result: RunResult): string {
  const rows = result.phases.map((p) => [
    p.name,
    String(p.mib),
    p.seconds.toFixed(2),
    mibps(p),
    p.peakRssMiB === undefined ? '-' : String(p.peakRssMiB),
    p.cpuSeconds === undefined ? '-' : p.cpuSeconds.toFixed(2),
    p.verified ? 'sha256 ok' : 'MISMATCH',
  ]);
  const title = `${result.label}${result.idleRssMiB === undefined ? '' : ` (server idle RSS ${result.idleRssMiB} MiB)`}`;
  const body = table(['phase', 'MiB', 'seconds', 'MiB/s', 'peak RSS MiB', 'server CPU s', 'check'], rows);
  const note = result.note ? `\n${result.note}` : '';
  return `\n${title}\n${body}${note}${result.error ? `\nFAILED: ${result.error}` : ''}`;
}

/** Side by side: MiB/s (and wall seconds for phases named "... parallel ...") and peak RSS per phase. */
export function summaryTable(heading: string, phaseNames: string[], results: RunResult[]): string {
  const cell = (r: RunResult, name: string, f: (p: Phase) => string | undefined) => {
    const p = r.phases.find((x) => x.name === name);
    return (p && f(p)) ?? '-';
  };
  const rows: string[][] = [];
  for (const name of phaseNames) {
    rows.push([`${name} MiB/s`, ...results.map((r) => cell(r, name, mibps))]);
    if (name.includes('parallel')) rows.push([`${name} wall s`, ...results.map((r) => cell(r, name, (p) => p.seconds.toFixed(2)))]);
    rows.push([`${name} peak RSS MiB`, ...results.map((r) => cell(r, name, (p) => p.peakRssMiB?.toString()))]);
  }
  rows.push(['server idle RSS MiB', ...results.map((r) => (r.phases.length > 0 && r.idleRssMiB !== undefined ? String(r.idleRssMiB) : '-'))]);
  return `\n${heading}\n${table(['', ...results.map((r) => r.label)], rows)}`;
}

/**
 * The single-stream phases every benchmark runs on one logged-in basic-ftp client: upload
 * `bigFile` as big.bin, then download it, the download checked by size and sha256.
 */
export async function singleStreamPhases(client: Client, meter: Meter, bigFile: string, bigSha: string, singleMiB: number, timeoutMs: number): Promise<Phase[]> {
  const upload = await timed(meter, 'single upload', singleMiB, timeoutMs, async () => {
    await client.uploadFrom(bigFile, 'big.bin');
    return () => true; // checked by the download below
  });
  const back = collector();
  const download = await timed(meter, 'single download', singleMiB, timeoutMs, async () => {
    await client.downloadTo(back.sink, 'big.bin');
    return () => {
      const got = digest(back.chunks);
      back.chunks.length = 0;
      return got.bytes === singleMiB * MIB && got.sha256 === bigSha;
    };
  });
  return [upload, download];
}
