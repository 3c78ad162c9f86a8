#!/usr/bin/env node
/**
 * The `dfos` executable (package.json "bin", `npm start`, pm2): sizes libuv's thread pool,
 * then runs the CLI (cli.ts).
 *
 * Why a CommonJS file: file I/O (reads, writes, fsync of every upload) and scrypt share
 * libuv's thread pool, 4 threads by default, so a few uploads being fsynced stalled every
 * other session's file access (SIZE took a median 130-155 ms during 100 parallel
 * uploads, 7-47 ms with 32 threads). The pool size is read once, when the pool is first
 * used, and Node's ES module loader already uses it to read modules: only a CommonJS entry
 * runs early enough. An operator's own UV_THREADPOOL_SIZE is kept.
 */
process.env.UV_THREADPOOL_SIZE ??= '32';

import('./cli.js').catch((err: unknown) => {
  process.stderr.write(`dfos: cannot start: ${err instanceof Error ? err.message : String(err)}; run \`npm install\` (it builds dist/)\n`);
  process.exitCode = 1;
});
