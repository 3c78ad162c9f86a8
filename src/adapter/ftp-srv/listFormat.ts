import type { StorageEntry } from '../../storage/StorageBackend.js';

/** C0 control characters and DEL, shown as `?` in listings (never sent raw). */
const CONTROL_CHARACTERS = /[\x00-\x1f\x7f]/g;

/**
 * A name as listings show it: control characters (only possible in names made on the
 * server's side, since clients cannot create them) become `?`, so a CR or LF in a name can
 * never split a listing line or forge a reply.
 */
export function listingName(name: string): string {
  return name.replace(CONTROL_CHARACTERS, '?');
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const SIX_MONTHS_MS = 182 * 24 * 3600 * 1000;

/**
 * One `ls -l` style LIST line. ftp-srv's formatter printed the server's numeric uid/gid;
 * this shows `ftp ftp` and only the permission bits, in the layout every client parses.
 */
export function formatListLine(stats: StorageEntry, now = Date.now()): string {
  const mode = stats.mode ?? (stats.type === 'directory' ? 0o755 : 0o644);
  const bits = 'rwxrwxrwx'
    .split('')
    .map((ch, i) => (mode & (1 << (8 - i)) ? ch : '-'))
    .join('');
  const type = stats.type === 'directory' ? 'd' : '-';
  const m = stats.mtime;
  const recent = Math.abs(now - m.getTime()) < SIX_MONTHS_MS;
  const day = String(m.getUTCDate()).padStart(2, ' ');
  const when = recent
    ? `${String(m.getUTCHours()).padStart(2, '0')}:${String(m.getUTCMinutes()).padStart(2, '0')}`
    : ` ${m.getUTCFullYear()}`;
  return `${type}${bits} 1 ftp ftp ${String(stats.size).padStart(12)} ${MONTHS[m.getUTCMonth()]} ${day} ${when} ${listingName(stats.name)}`;
}
