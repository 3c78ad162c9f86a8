import { Option, type Command } from 'commander';
import { BYTE_SIZE_RULE, formatByteSize, parseByteSize } from '../util/byteSize.js';
import type { UserLimitKey } from '../users/usersFormat.js';
import { usageError } from './errors.js';

/**
 * The per-user limit flags of `dfos users add` and `dfos users set`, declared once: each
 * maps a flag to a users.json key and says how its value is written (a count, or a size
 * with human units). `dfos users set` also takes `none` to remove a limit.
 */
interface LimitFlag {
  key: UserLimitKey;
  flag: string;
  help: string;
  /** 'count': a whole number; 'size': bytes with units; 'rate': bytes/s with units. */
  kind: 'count' | 'size' | 'rate';
}

const LIMIT_FLAGS: readonly LimitFlag[] = [
  { key: 'maxSessions', flag: 'max-sessions', kind: 'count', help: 'sessions this user may have open at once' },
  { key: 'quotaBytes', flag: 'quota', kind: 'size', help: 'total size of this user\'s files (e.g. 10GiB)' },
  { key: 'quotaFiles', flag: 'max-files', kind: 'count', help: 'number of files this user may keep' },
  { key: 'maxFileSize', flag: 'max-file-size', kind: 'size', help: 'largest file this user may upload (e.g. 100MiB)' },
  { key: 'rateUp', flag: 'rate-up', kind: 'rate', help: 'upload rate over all this user\'s sessions (e.g. 10MiB = 10 MiB/s)' },
  { key: 'rateDown', flag: 'rate-down', kind: 'rate', help: 'download rate, listings and previews included (e.g. 50MiB)' },
];

/** Adds the limit flags to a command; `removable` adds "or none" (for `set`). */
export function addLimitOptions(cmd: Command, removable: boolean): Command {
  for (const f of LIMIT_FLAGS) {
    const value = f.kind === 'count' ? '<n>' : f.kind === 'size' ? '<size>' : '<bytes/s>';
    cmd.addOption(new Option(`--${f.flag} ${value}`, `${f.help}${removable ? '; "none" removes the limit' : ''}`));
  }
  return cmd;
}

/** Reads the limit flags given; null means "none" (remove), allowed only when `removable`. */
export function readLimitOptions(opts: Record<string, unknown>, removable: boolean): Partial<Record<UserLimitKey, number | null>> {
  const limits: Partial<Record<UserLimitKey, number | null>> = {};
  for (const f of LIMIT_FLAGS) {
    const raw = opts[camel(f.flag)];
    if (raw === undefined) continue;
    const text = String(raw);
    if (removable && text.toLowerCase() === 'none') {
      limits[f.key] = null;
      continue;
    }
    const value = f.kind === 'count' ? (/^\d{1,15}$/.test(text) ? Number(text) : undefined) : parseByteSize(text);
    if (value === undefined || value < 1) {
      const rule = f.kind === 'count' ? 'a whole number of 1 or more' : f.kind === 'size' ? `${BYTE_SIZE_RULE} (at least 1 byte)` : `a rate in bytes per second such as 512KiB or 10MiB`;
      throw usageError(`--${f.flag} must be ${rule}${removable ? ', or none' : ''} (got ${JSON.stringify(text)})`);
    }
    limits[f.key] = value;
  }
  return limits;
}

/** A user's limits for people: "quota 10 GiB, max file size 100 MiB, upload 1 MiB/s". */
export function describeLimits(user: Partial<Record<UserLimitKey, number>>): string[] {
  const parts: string[] = [];
  if (user.maxSessions !== undefined) parts.push(`${user.maxSessions} sessions`);
  if (user.quotaBytes !== undefined) parts.push(`quota ${formatByteSize(user.quotaBytes)}`);
  if (user.quotaFiles !== undefined) parts.push(`${user.quotaFiles} files`);
  if (user.maxFileSize !== undefined) parts.push(`files up to ${formatByteSize(user.maxFileSize)}`);
  if (user.rateUp !== undefined) parts.push(`upload ${formatByteSize(user.rateUp)}/s`);
  if (user.rateDown !== undefined) parts.push(`download ${formatByteSize(user.rateDown)}/s`);
  return parts;
}

function camel(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
