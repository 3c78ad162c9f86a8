import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { rawUpload } from './helpers/dataTransfer.js';
import { requireClient } from './helpers/protocolFixtures.js';
import { RawFtp } from './helpers/rawFtp.js';
import { makeServerDirs, spawnServer } from './helpers/serverProcess.js';

/**
 * What `--fsync always` promises (a 226 means the upload survives a crash), checked at the
 * system calls: the server runs under strace, which records the file syncs, opens and renames
 * of every thread. No test can crash a machine; the order of these calls is what makes the
 * promise hold.
 */

const TRACED = 'trace=openat,fdatasync,fsync,rename,renameat,renameat2';

interface Call {
  /** The system call's name. */
  name: string;
  /** Its arguments as strace printed them (up to the result or `<unfinished ...>`). */
  args: string;
  /** Its result, when strace printed it on the same line. */
  result: string | undefined;
}

/** The calls in the order they started (a call interrupted by another thread's shows once, where it started). */
function parseTrace(text: string): Call[] {
  const calls: Call[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+\s+(\w+)\((.*?)(?:\) += (\S+).*| <unfinished \.\.\.>)$/.exec(line);
    if (m) calls.push({ name: m[1]!, args: m[2]!, result: m[3] });
  }
  return calls;
}

/** Uploads `name` through a server running under strace, and returns the calls it made. */
async function tracedUpload(t: import('ava').ExecutionContext, fsync: 'always' | 'never', name: string): Promise<Call[]> {
  requireClient('strace', ['-V'], 'strace');
  const dirs = await makeServerDirs();
  const traceFile = join(dirs.dir, 'strace.txt');
  // -f follows the thread pool's threads, where the file calls run.
  const traced = await spawnServer({ dirs, args: ['--fsync', fsync], wrapper: ['strace', '-f', '-qq', '-o', traceFile, '-e', TRACED], startTimeoutMs: 30_000 });
  t.teardown(async () => {
    // Killing strace would only detach it: end the traced server itself (its PID starts every line).
    const first = /^(\d+)\s/.exec(await readFile(traceFile, 'utf8').catch(() => ''));
    if (first) {
      try {
        process.kill(Number(first[1]), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await traced.cleanup();
  });
  const raw = await RawFtp.login(traced.port, 'alice', 'alice-pw', '127.0.0.1', 15_000);
  const up = await rawUpload(raw, `STOR ${name}`, Buffer.alloc(300_000, 7));
  t.is(up.code, 226, up.final.raw);
  await raw.command('QUIT').catch(() => undefined);
  raw.close();
  t.true((await readFile(join(traced.storage, 'alice', name))).equals(Buffer.alloc(300_000, 7)));
  return parseTrace(await readFile(traceFile, 'utf8'));
}

/** How one upload's publication went, read from the calls: which syncs happened, and where. */
function publication(calls: Call[], name: string): { renamed: boolean; tempCreatedBeforeRename: boolean; tempSyncedBeforeRename: boolean; directorySyncedAfterRename: boolean } {
  const rename = calls.findIndex((c) => /^rename/.test(c.name) && c.args.includes(`/${name}"`));
  if (rename < 0) return { renamed: false, tempCreatedBeforeRename: false, tempSyncedBeforeRename: false, directorySyncedAfterRename: false };
  // rename("/proc/self/fd/D/<temporary>", "/proc/self/fd/D/<name>"): D is the held upload directory.
  const [, dirFd, temp] = /"\/proc\/self\/fd\/(\d+)\/([^"]+)"/.exec(calls[rename]!.args) ?? [];
  const created = calls.findIndex((c) => c.name === 'openat' && c.args.includes(`/proc/self/fd/${dirFd}/${temp}"`) && c.args.includes('O_CREAT'));
  const tempFd = created >= 0 ? calls[created]!.result : undefined;
  const tempSynced = calls.some((c, i) => i > created && i < rename && c.name === 'fdatasync' && c.args === tempFd);
  // The directory is synced through a descriptor of its own, opened via the held one.
  const dirOpens = calls.flatMap((c, i) => (i > rename && c.name === 'openat' && c.args.includes(`"/proc/self/fd/${dirFd}"`) && c.args.includes('O_DIRECTORY') ? [i] : []));
  const dirSynced = dirOpens.some((open) => calls.some((c, i) => i > open && c.name === 'fsync' && c.args === calls[open]!.result));
  return { renamed: true, tempCreatedBeforeRename: created >= 0 && created < rename, tempSyncedBeforeRename: tempSynced, directorySyncedAfterRename: dirSynced };
}

test('--fsync always: the temporary is fdatasync-ed before the rename that publishes it, and the directory is fsync-ed after the rename', async (t) => {
  t.timeout(90_000);
  const calls = await tracedUpload(t, 'always', 'durable.bin');
  t.deepEqual(publication(calls, 'durable.bin'), { renamed: true, tempCreatedBeforeRename: true, tempSyncedBeforeRename: true, directorySyncedAfterRename: true });
});

test('--fsync never: the same upload is published by a rename without syncing the file or the directory', async (t) => {
  t.timeout(90_000);
  const calls = await tracedUpload(t, 'never', 'fast.bin');
  t.deepEqual(publication(calls, 'fast.bin'), { renamed: true, tempCreatedBeforeRename: true, tempSyncedBeforeRename: false, directorySyncedAfterRename: false });
});
