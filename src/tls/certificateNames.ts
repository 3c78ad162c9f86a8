import { isIP } from 'node:net';
import { hostname } from 'node:os';

/** The names every generated certificate is valid for, besides the host's name. */
export const LOCAL_CERTIFICATE_NAMES = ['localhost', '127.0.0.1', '::1'] as const;

const DNS_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Whether `name` can go in a certificate's subjectAltName as a DNS name (a `*.` wildcard allowed). */
export function isDnsName(name: string): boolean {
  const bare = name.replace(/\.$/, '');
  if (bare.length === 0 || bare.length > 253) return false;
  const labels = bare.split('.');
  if (labels[0] === '*') labels.shift();
  return labels.length > 0 && labels.every((l) => DNS_LABEL.test(l));
}

/**
 * The names the generated certificate covers: localhost, 127.0.0.1, ::1, the host's name
 * (os.hostname(), when it is a valid DNS name) and the extra names, without duplicates
 * (DNS names compared without case). IP addresses and DNS names only; others are dropped.
 */
export function certificateNames(extra: readonly string[] = [], host: string = hostname()): string[] {
  const seen = new Set<string>();
  const names: string[] = [];
  for (const raw of [...LOCAL_CERTIFICATE_NAMES, host, ...extra]) {
    const name = raw.trim();
    if (isIP(name) === 0 && !isDnsName(name)) continue;
    const key = isIP(name) === 0 ? name.toLowerCase().replace(/\.$/, '') : name;
    if (seen.has(key)) continue;
    seen.add(key);
    names.push(isIP(name) === 0 ? name.replace(/\.$/, '') : name);
  }
  return names;
}
