/**
 * Server URLs, shared by DfosClient.connect(url) and the CLI's --url:
 * `ftp://` (plain, port 21), `ftpes://` (explicit TLS: AUTH TLS on the normal port, 21) and
 * `ftps://` (implicit TLS: TLS from the first byte, port 990), each as
 * `scheme://user[:password]@host[:port]` with %-escapes in the user and password.
 */

/** What a server URL says. */
export interface ParsedServerUrl {
  host: string;
  port: number;
  user: string;
  password?: string;
  /** false for ftp://, true (explicit, AUTH TLS) for ftpes://, 'implicit' for ftps://. */
  secure: boolean | 'implicit';
}

/** The URL schemes and their TLS modes and default ports. */
export const URL_SCHEMES: Readonly<Record<string, { secure: boolean | 'implicit'; port: number }>> = {
  'ftp:': { secure: false, port: 21 },
  'ftpes:': { secure: true, port: 21 },
  'ftps:': { secure: 'implicit', port: 990 },
};

/** The default control port for a TLS mode: 990 for implicit TLS, else 21. */
export function defaultPort(secure: boolean | 'implicit' | undefined): number {
  return secure === 'implicit' ? 990 : 21;
}

/** The URL with any password replaced by `***` (for messages). */
export function redactUrl(text: string): string {
  return text.replace(/^(\w+:\/\/[^:@/]*):[^@/]*@/, '$1:***@');
}

/** Parses a server URL; a string result says what is wrong with it ("has no user name"). */
export function parseServerUrl(text: string): ParsedServerUrl | string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'is not a URL';
  }
  const scheme = URL_SCHEMES[url.protocol];
  if (scheme === undefined) return 'must start with ftp://, ftpes:// (explicit TLS) or ftps:// (implicit TLS)';
  if (url.username === '') return 'has no user name';
  if (url.hostname === '') return 'has no host';
  if (url.pathname !== '' && url.pathname !== '/') return 'must not contain a path';
  if (url.search !== '' || url.hash !== '') return 'must not contain ? or #';
  let user: string;
  let password: string | undefined;
  try {
    user = decodeURIComponent(url.username);
    password = url.password === '' ? undefined : decodeURIComponent(url.password);
  } catch {
    return 'has a malformed %-escape';
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? scheme.port : Number(url.port);
  const parsed: ParsedServerUrl = { host, port, user, secure: scheme.secure };
  if (password !== undefined) parsed.password = password;
  return parsed;
}
