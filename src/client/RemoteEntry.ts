import { FileType, type FileInfo } from 'basic-ftp';

/** One entry of a remote directory listing. */
export interface RemoteEntry {
  /** The name within the listed directory. */
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'unknown';
  /** Size in bytes (as listed; for directories whatever the server reports). */
  size: number;
  /**
   * Last modification. Exact to the second from MLSD; from a LIST line (the only listing
   * DFOS offers today) to the minute, read as UTC, for older files to the day.
   */
  modifiedAt: Date;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/**
 * Parses the date of an `ls -l` style LIST line as UTC (DFOS writes UTC): `Nov 24 11:29`
 * (recent: the year is the one that puts the date closest to `now`, as `ls` shows times
 * only within about six months) or `Nov 24 2025`. Also MS-DOS style `11-24-25 11:29AM`.
 * Returns an invalid Date for anything else.
 */
export function parseListDate(raw: string, now = new Date()): Date {
  const unix = /^([A-Za-z]{3})\s+(\d{1,2})\s+(?:(\d{1,2}):(\d{2})|(\d{4}))$/.exec(raw.trim());
  if (unix) {
    const [, mon = '', day = '', hh, mm, year] = unix;
    const month = MONTHS.indexOf(mon.toLowerCase());
    if (month < 0) return new Date(NaN);
    if (year !== undefined) return new Date(Date.UTC(Number(year), month, Number(day)));
    const at = (y: number) => Date.UTC(y, month, Number(day), Number(hh), Number(mm));
    const thisYear = now.getUTCFullYear();
    const best = [thisYear - 1, thisYear, thisYear + 1]
      .map(at)
      .reduce((a, b) => (Math.abs(b - now.getTime()) < Math.abs(a - now.getTime()) ? b : a));
    return new Date(best);
  }
  const dos = /^(\d{2})-(\d{2})-(\d{2}|\d{4})\s+(\d{1,2}):(\d{2})\s*([AP]M)?$/i.exec(raw.trim());
  if (dos) {
    const [, mo = '', d = '', y = '', h = '', mi = '', ampm] = dos;
    let year = Number(y);
    if (y.length === 2) year += year < 70 ? 2000 : 1900;
    let hour = Number(h) % (ampm ? 12 : 24);
    if (ampm?.toUpperCase() === 'PM') hour += 12;
    return new Date(Date.UTC(year, Number(mo) - 1, Number(d), hour, Number(mi)));
  }
  return new Date(NaN);
}

function typeOf(info: FileInfo): RemoteEntry['type'] {
  switch (info.type) {
    case FileType.File:
      return 'file';
    case FileType.Directory:
      return 'directory';
    case FileType.SymbolicLink:
      return 'symlink';
    default:
      return 'unknown';
  }
}

/** Converts a basic-ftp FileInfo (from MLSD or LIST) into a RemoteEntry. */
export function toRemoteEntry(info: FileInfo, now = new Date()): RemoteEntry {
  return {
    name: info.name,
    type: typeOf(info),
    size: info.size,
    modifiedAt: info.modifiedAt ?? parseListDate(info.rawModifiedAt, now),
  };
}
