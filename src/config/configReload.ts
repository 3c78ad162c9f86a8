import type { ServerConfig } from './serverConfig.js';

/** A setting's name as operators write it (the flag and config file key): `maxSessionsPerIp` → `max-sessions-per-ip`. */
export function settingName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/**
 * The settings a running server takes on SIGHUP. Each is read where it is used, so a new
 * value applies from then on: limits and timeouts to connections opened afterwards (open
 * ones keep theirs), the defender from its next count (failure counts start again; bans
 * stay), the server-wide rate from the next chunk of shaped transfers, the log level and log rotation at once, the xferlog from its next line. Every
 * other setting (addresses, ports, storage, users file, TLS mode and files, directories…)
 * is only read at startup: a change is logged as needing a restart.
 */
export const RELOADABLE_KEYS = [
  'logLevel',
  'logRotate',
  'logMaxSize',
  'logMaxFiles',
  'xferlog',
  'shutdownGrace',
  'idleTimeout',
  'loginTimeout',
  'dataTimeout',
  'authFailDelay',
  'maxSessions',
  'maxLoginAttempts',
  'maxSessionsPerIp',
  'banThreshold',
  'banWindow',
  'banTime',
  'banTimeMax',
  'banAllow',
  'rateTotal',
] as const satisfies readonly (keyof ServerConfig)[];

export type ReloadableKey = (typeof RELOADABLE_KEYS)[number];

/** What a SIGHUP does with a newly read configuration. */
export interface ReloadPlan {
  /** The configuration to run with: the new values of reloadable keys, the running values of the others. */
  config: ServerConfig;
  /** Reloadable keys whose value changed (applied now). */
  applied: ReloadableKey[];
  /** Keys whose value changed but that are read only at startup, by their setting name. */
  needRestart: string[];
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Compares the running configuration with a newly read one. */
export function planReload(running: ServerConfig, next: ServerConfig): ReloadPlan {
  const reloadable = new Set<string>(RELOADABLE_KEYS);
  const config = { ...running } as Record<string, unknown>;
  const applied: ReloadableKey[] = [];
  const needRestart: string[] = [];
  const keys = new Set([...Object.keys(running), ...Object.keys(next)]);
  for (const key of keys) {
    const before = (running as Record<string, unknown>)[key];
    const after = (next as Record<string, unknown>)[key];
    if (same(before, after)) continue;
    if (reloadable.has(key)) {
      config[key] = after;
      applied.push(key as ReloadableKey);
    } else {
      needRestart.push(settingName(key));
    }
  }
  return { config: config as ServerConfig, applied, needRestart };
}
