import type { Stats } from 'node:fs';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const SIX_MONTHS_MS = 182 * 24 * 3600 * 1000;

/**
 * One `ls -l` style LIST line. ftp-srv's formatter printed the server's numeric uid/gid;
 * this shows `ftp ftp` and only the permission bits, in the layout every client parses.
 */
export function formatListLine(stats: Stats & { name: string }, now = Date.now()): string {
  const mode = stats.mode & 0o777;
  const bits = 'rwxrwxrwx'
    .split('')
    .map((ch, i) => (mode & (1 << (8 - i)) ? ch : '-'))
    .join('');
  const type = stats.isDirectory() ? 'd' : '-';
  const m = stats.mtime;
  const recent = Math.abs(now - m.getTime()) < SIX_MONTHS_MS;
  const day = String(m.getUTCDate()).padStart(2, ' ');
  const when = recent
    ? `${String(m.getUTCHours()).padStart(2, '0')}:${String(m.getUTCMinutes()).padStart(2, '0')}`
    : ` ${m.getUTCFullYear()}`;
  return `${type}${bits} 1 ftp ftp ${String(stats.size).padStart(12)} ${MONTHS[m.getUTCMonth()]} ${day} ${when} ${stats.name}`;
}
