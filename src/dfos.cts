#!/usr/bin/env node
import { setFlagsFromString } from 'node:v8';
import { allocatorEnv } from './server/allocator.cjs';

/**
 * The `dfos` executable (package.json "bin", `npm start`, pm2): sizes libuv's thread pool,
 * keeps the JavaScript heap's young generation small, then runs the CLI (cli.ts).
 *
 * Why a CommonJS file: file I/O (reads, writes, fsync of every upload) and scrypt share
 * libuv's thread pool, 4 threads by default, so a few uploads being fsynced stalled every
 * other session's file access (SIZE took a median 130-155 ms during 100 parallel
 * uploads, 7-47 ms with 32 threads). The pool size is read once, when the pool is first
 * used, and Node's ES module loader already uses it to read modules: only a CommonJS entry
 * runs early enough. An operator's own UV_THREADPOOL_SIZE is kept.
 */
process.env.UV_THREADPOOL_SIZE ??= '32';

/*
 * V8 doubles its young generation (two semi-spaces) whenever objects survive a scavenge, up
 * to 2 × 16 MiB, and startup alone grows it to the maximum: a resident 32 MiB that an FTP
 * server, whose bulk data lives outside the heap in buffers, does not need. Growth factor 1
 * keeps it at its initial 2 × 1 MiB. A/B, ftpbench -b all with 200 clients, two runs each:
 * memory at start (RSS − shared) 45/45 → 33/36 MB, peak 169/170 → 142/142 MB, RSS after
 * 269/256 → 221/234 MB, with the same CPU time and the same transfer and login lines. Only
 * settable at run time this way (the maximum size is fixed when the heap is made); an
 * operator's own semi-space flag (node option or NODE_OPTIONS) is left alone.
 */
if (!/semi[-_]space/.test(`${process.execArgv.join(' ')} ${process.env.NODE_OPTIONS ?? ''}`)) setFlagsFromString('--semi-space-growth-factor=1');

/*
 * `serve` runs on jemalloc when installed, else on glibc with a fixed mmap threshold (see
 * server/allocator.cts): the allocator and its settings are chosen
 * when a process starts, so the process replaces itself with the same command under the
 * right environment (same PID, same stdio) where Node offers process.execve. Not under an
 * IPC channel (pm2 in fork mode), which does not survive the replacement: there the
 * workers, forked with that environment, still get it.
 */
if (process.argv[2] === 'serve') {
  const allocator = allocatorEnv();
  if ('error' in allocator) {
    process.stderr.write(`dfos: ${allocator.error}\n`);
    process.exit(2);
  }
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (Object.keys(allocator.add).length > 0 && typeof execve === 'function' && process.channel === undefined) {
    try {
      execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], { ...process.env, ...allocator.add });
    } catch (err) {
      // Not fatal: this process goes on, on the system allocator.
      const settings = Object.keys(allocator.add).join(', ');
      process.stderr.write(`dfos: could not restart with the allocator settings ${settings} (${err instanceof Error ? err.message : String(err)}); running on the system allocator as it comes (DFOS_ALLOCATOR=system hides this)\n`);
    }
  }
}

import('./cli.js').catch((err: unknown) => {
  process.stderr.write(`dfos: cannot start: ${err instanceof Error ? err.message : String(err)}; run \`npm install\` (it builds dist/)\n`);
  process.exitCode = 1;
});
