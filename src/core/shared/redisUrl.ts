/** What `--redis` accepts, for the one-line error that names the flag. */
export const REDIS_URL_RULE = 'redis must be a URL such as redis://127.0.0.1:6379, redis://:PASSWORD@host:6379/0 or rediss://user:PASSWORD@host:6380 (TLS)';

/** What `--redis-prefix` accepts. */
export const REDIS_PREFIX_RULE = 'redis-prefix must be 1 to 64 letters, digits or _ - . : such as dfos: or dfos-eu:';

/** Whether `url` is a Redis URL DFOS can connect to: redis:// or rediss://, a host, an optional port and database number. */
export function isRedisUrl(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') return false;
  if (parsed.hostname === '') return false;
  if (parsed.search !== '' || parsed.hash !== '') return false;
  return parsed.pathname === '' || parsed.pathname === '/' || /^\/\d{1,2}$/.test(parsed.pathname);
}

/** Whether `prefix` is a usable key prefix (see REDIS_PREFIX_RULE). */
export function isRedisPrefix(prefix: string): boolean {
  return /^[\w.:-]{1,64}$/.test(prefix);
}
