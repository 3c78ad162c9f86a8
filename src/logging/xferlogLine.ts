import type { AuditEvent } from './AuditLog.js';

/**
 * The xferlog format of wu-ftpd (also written by ProFTPD and vsftpd), one line per transfer,
 * the time (five words) and thirteen fields separated by spaces, read by existing log
 * analysers (xferstats, webalizer, awstats…):
 *
 *   current-time transfer-time remote-host file-size filename transfer-type
 *   special-action-flag direction access-mode username service-name
 *   authentication-method authenticated-user-id completion-status
 *
 * e.g. `Mon Nov 30 13:52:01 2026 1 127.0.0.1 1024 /alice/a.txt b _ i r alice ftp 0 * c`.
 */

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Local time as C's ctime() writes it, which xferlog uses: `Mon Nov  3 09:05:01 2026` (day of month space-padded). */
export function ctimeText(time: Date): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[time.getDay()]} ${MONTHS[time.getMonth()]} ${String(time.getDate()).padStart(2, ' ')} ${two(time.getHours())}:${two(time.getMinutes())}:${two(time.getSeconds())} ${time.getFullYear()}`;
}

/**
 * A file name as one xferlog field: the format cannot quote, so whitespace and control
 * characters become `_` (as ProFTPD does); analysers then see one field.
 */
export function xferlogFileName(name: string): string {
  return name.replace(/[\s\p{Cc}]/gu, '_');
}

/**
 * The xferlog line of an audit record, or undefined when the record is not a transfer: an
 * upload or download that got as far as its data transfer (the record carries `bytes`,
 * also when it failed or was aborted; one refused before any byte, such as a 550 for a
 * missing file, is not a transfer). The file name is the file's place under the storage
 * root, `/<user><path>`, as one field; the completion status is `c` for a transfer that
 * succeeded and `i` for one that failed or was aborted. Times are local time; the transfer
 * time is in whole seconds, at least 1 (analysers divide the size by it).
 */
export function xferlogLine(event: AuditEvent, at: Date): string | undefined {
  if ((event.action !== 'upload' && event.action !== 'download') || event.bytes === undefined || event.user === undefined) return undefined;
  const seconds = Math.max(1, Math.round((event.durationMs ?? 0) / 1000));
  return [
    ctimeText(at),
    seconds,
    event.client ?? '-',
    event.bytes,
    xferlogFileName(`/${event.user}${event.path ?? ''}`),
    event.transferType === 'ascii' ? 'a' : 'b',
    '_',
    event.action === 'upload' ? 'i' : 'o',
    'r',
    xferlogFileName(event.user),
    'ftp',
    '0',
    '*',
    event.result === 'ok' ? 'c' : 'i',
  ].join(' ');
}
