// pm2 ecosystem file for DFOS: `npx pm2 start pm2.config.js` (after `npm install`, which
// builds dist/). `npx pm2 stop dfos` drains like SIGTERM: running transfers may finish
// within the shutdown grace, then the server exits 0.
//
// This package is "type": "module", so this file is an ES module. pm2 loads ecosystem
// files with require(); Node >= 20.19 (see "engines" in package.json) can require() an
// ES module and hands pm2 its named exports, so the `apps` export below is what pm2 reads.
//
// Configure the server with DFOS_* environment variables in the shell that runs
// `pm2 start` (pm2 passes them on): DFOS_PORT, DFOS_HOST, DFOS_STORAGE, DFOS_USERS,
// DFOS_LOG_DIR, DFOS_SHUTDOWN_GRACE, ... (see `node dist/dfos.cjs serve --help`), or in a
// dfos.yaml in this folder (see dfos.example.yaml). `npx pm2 sendSignal SIGHUP dfos`
// re-reads it. The kill_timeout below follows DFOS_SHUTDOWN_GRACE only.
//
// Every core is used by default: DFOS's primary, this one fork-mode process, forks one
// worker per CPU, slices the passive range and keeps the state they share (DFOS_WORKERS=N
// sets another number, DFOS_WORKERS=1 a single process). Do not switch to exec_mode
// 'cluster' (see README, "Running under pm2").

import { allocatorEnv } from './dist/server/allocator.cjs';

/**
 * jemalloc for the process pm2 starts (see README, "Memory allocator"): under pm2 DFOS cannot
 * replace itself (pm2's IPC channel would not survive), so with DFOS_WORKERS=1 the allocator
 * comes from here; the workers of the default setup get it from DFOS either way. Nothing is
 * added when jemalloc is not installed or DFOS_ALLOCATOR=system; a wrong DFOS_ALLOCATOR is
 * reported by the server itself.
 */
const allocator = allocatorEnv();

/** The server's shutdown grace in seconds (DFOS_SHUTDOWN_GRACE, default 30). */
const grace = Number(process.env.DFOS_SHUTDOWN_GRACE ?? 30);
const graceSeconds = Number.isFinite(grace) && grace >= 0 ? grace : 30;

export const apps = [
  {
    name: 'dfos',
    script: 'dist/dfos.cjs',
    args: ['serve'],
    cwd: import.meta.dirname,
    exec_mode: 'fork',
    instances: 1,
    // "online" only once the server listens: it calls process.send('ready').
    wait_ready: true,
    listen_timeout: 10_000,
    // `pm2 stop` / `pm2 restart` send SIGINT, which drains. pm2 waits kill_timeout ms
    // before SIGKILL: always longer than the grace (30 s → 40 s), so a drain is never cut.
    kill_signal: 'SIGINT',
    kill_timeout: (graceSeconds + 10) * 1000,
    // Restart after a crash, with a growing delay (no stop_exit_codes: pm2 reports a
    // process killed by a signal as exit code 0, so [0] would also disable that restart).
    autorestart: true,
    exp_backoff_restart_delay: 200,
    max_restarts: 10,
    min_uptime: 5_000,
    // One log file per stream for the app (pm2 logs dfos); DFOS also writes logs/dfos.log.
    merge_logs: true,
    env: {
      NODE_ENV: 'production',
      ...('add' in allocator ? allocator.add : {}),
    },
  },
];

export default { apps };
