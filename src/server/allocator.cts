import { existsSync } from 'node:fs';

/**
 * Which memory allocator the server runs on: jemalloc when installed (Debian and Ubuntu:
 * libjemalloc2), else glibc's malloc. Read from DFOS_ALLOCATOR: `auto` (the default),
 * `jemalloc` (required: refuse to start without it) or `system` (glibc).
 *
 * Why: after a burst of transfers glibc kept the memory the server had freed (freed socket
 * and file buffers end up scattered over its heaps, and free() only returns the top of a
 * heap). After ftpbench's 200-client stages the server's RSS stayed at 210-225 MB (idle:
 * 78 MB) with 23 MB of JavaScript heap and 3 MB of buffers alive. jemalloc returns freed
 * pages on its own after `dirty_decay_ms` from a background thread: 80 MB after the same
 * run, with the same transfer and login lines.
 *
 * The allocator is chosen when a process starts (LD_PRELOAD), so it is applied by starting
 * the process with this environment: the workers are forked with it, and dfos.cts replaces
 * a single `serve` process with itself under it where Node can (process.execve, Node >= 22.15).
 * An operator's own LD_PRELOAD with jemalloc, or own MALLOC_CONF, is kept.
 */

/** Where Linux distributions install jemalloc; the first one present is used. */
const JEMALLOC_PATHS = [
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
  '/usr/lib64/libjemalloc.so.2',
  '/usr/lib/libjemalloc.so.2',
];

/** Background purging, dirty pages returned after 1 s of disuse, no lazily-freed middle state. */
export const JEMALLOC_CONF = 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0';

/** The environment to add to a server process (nothing when it already has what it needs), or the operator's mistake in one line. */
export type AllocatorEnv = { add: Record<string, string> } | { error: string };

export function allocatorEnv(env: NodeJS.ProcessEnv = process.env, exists: (path: string) => boolean = existsSync): AllocatorEnv {
  const wanted = env.DFOS_ALLOCATOR ?? 'auto';
  if (wanted !== 'auto' && wanted !== 'jemalloc' && wanted !== 'system') {
    return { error: `DFOS_ALLOCATOR=${wanted} is not an allocator: use auto (jemalloc when installed, the default), jemalloc or system` };
  }
  if (wanted === 'system' || /jemalloc/.test(env.LD_PRELOAD ?? '')) return { add: {} };
  const lib = process.platform === 'linux' ? JEMALLOC_PATHS.find((path) => exists(path)) : undefined;
  if (lib === undefined) {
    return wanted === 'jemalloc'
      ? { error: `DFOS_ALLOCATOR=jemalloc: libjemalloc.so.2 not found in ${JEMALLOC_PATHS.join(', ')}; install it (apt-get install libjemalloc2) or set DFOS_ALLOCATOR=system` }
      : { add: {} };
  }
  return {
    add: {
      LD_PRELOAD: env.LD_PRELOAD ? `${lib}:${env.LD_PRELOAD}` : lib,
      ...(env.MALLOC_CONF === undefined ? { MALLOC_CONF: JEMALLOC_CONF } : {}),
    },
  };
}
