import { existsSync } from 'node:fs';

/**
 * Which memory allocator the server runs on: jemalloc when installed (Debian and Ubuntu:
 * libjemalloc2), else glibc's malloc with a fixed mmap threshold (GLIBC_MMAP_THRESHOLD).
 * Read from DFOS_ALLOCATOR: `auto` (the default), `jemalloc` (required: refuse to start
 * without it) or `system` (glibc as it comes, nothing added).
 *
 * Why: after a burst of transfers glibc kept the memory the server had freed (freed socket
 * and file buffers end up scattered over its heaps, and free() only returns the top of a
 * heap; they land there because the first login's scrypt raised glibc's mmap threshold,
 * see GLIBC_MMAP_THRESHOLD). After ftpbench's 200-client stages the server's RSS stayed at
 * 210-225 MB (idle: 78 MB) with 23 MB of JavaScript heap and 3 MB of buffers alive.
 * jemalloc returns freed pages on its own after `dirty_decay_ms` from a background thread:
 * 80 MB after the same run, with the same transfer and login lines.
 *
 * The allocator is chosen when a process starts (LD_PRELOAD), so it is applied by starting
 * the process with this environment: the workers are forked with it, and dfos.cts replaces
 * a single `serve` process with itself under it where Node can (process.execve, Node >= 22.15).
 * An operator's own LD_PRELOAD with jemalloc, own MALLOC_CONF or own mmap threshold is kept.
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

/**
 * Without jemalloc (auto mode, not installed): glibc with a fixed mmap threshold. glibc
 * serves an allocation of 128 KiB or more with its own mmap and returns it to the system on
 * free, but it raises that threshold to the size of any such block freed (up to 32 MiB). The
 * first login's scrypt verification allocates and frees a 16 MiB block (N=16384, r=8), so
 * from then on every buffer under 16 MiB came from malloc's heaps and stayed there after
 * use. A fixed threshold turns that adjustment off. A/B on Node 20, one process on glibc,
 * ftpbench's 200-client stages twice: RSS 10 s after 207 and 214 MB with glibc's default
 * (idle 75), 89 and 92 MB with this (idle 67); jemalloc 77 and 77 (idle 73).
 */
export const GLIBC_MMAP_THRESHOLD = String(128 << 10);

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
    if (wanted === 'jemalloc') {
      return { error: `DFOS_ALLOCATOR=jemalloc: libjemalloc.so.2 not found in ${JEMALLOC_PATHS.join(', ')}; install it (apt-get install libjemalloc2) or set DFOS_ALLOCATOR=system` };
    }
    // The operator's own mmap threshold (either spelling glibc reads) is kept.
    const ownThreshold = env.MALLOC_MMAP_THRESHOLD_ !== undefined || /mmap_threshold/.test(env.GLIBC_TUNABLES ?? '');
    return { add: process.platform === 'linux' && !ownThreshold ? { MALLOC_MMAP_THRESHOLD_: GLIBC_MMAP_THRESHOLD } : {} };
  }
  return {
    add: {
      LD_PRELOAD: env.LD_PRELOAD ? `${lib}:${env.LD_PRELOAD}` : lib,
      ...(env.MALLOC_CONF === undefined ? { MALLOC_CONF: JEMALLOC_CONF } : {}),
    },
  };
}
