import { isIP } from 'node:net';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { isDnsName } from '../tls/certificateNames.js';
import { cidrProblem } from '../core/AllowList.js';
import { BYTE_SIZE_RULE, parseByteSize } from '../util/byteSize.js';
import { DURATION_RULE, parseDuration } from '../util/duration.js';
import { isRedisPrefix, isRedisUrl, REDIS_PREFIX_RULE, REDIS_URL_RULE } from '../core/shared/redisUrl.js';
import { isLoopbackAddress } from '../util/address.js';
import { parseListenAddress } from '../util/listenAddress.js';
import { LOG_LEVELS } from '../logging/createLogger.js';
import { LOG_ROTATIONS } from '../logging/RotatingFile.js';

export { LOG_LEVELS, type LogLevel } from '../logging/createLogger.js';
export { LOG_ROTATIONS, type LogRotationMode } from '../logging/RotatingFile.js';

/** `--tls`: `off`, `on` (offered: AUTH TLS and the implicit port) or `required`. */
export const TLS_MODES = ['off', 'on', 'required'] as const;
/** `--tls-min-version`. */
export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
/** `--fsync`: `always` (an upload is on disk before 226) or `never` (left to the page cache). */
export const FSYNC_MODES = ['always', 'never'] as const;
export type FsyncMode = (typeof FSYNC_MODES)[number];
/** `--tls-session-reuse`. */
export const TLS_SESSION_REUSE = ['required', 'off'] as const;

const CERT_NAMES_RULE =
  'tls-cert-names must be a comma-separated list of DNS names or IP addresses such as ftp.example.com,192.0.2.7';

const ADMIN_LISTEN_RULE = 'admin-listen must be HOST:PORT with an IP address (127.0.0.1:9121, [::1]:9121) or off';

const BAN_ALLOW_RULE = 'ban-allow must be a comma-separated list of addresses or CIDR ranges such as 192.0.2.0/24,2001:db8::/32';

const TRUSTED_PROXIES_RULE =
  'trusted-proxies must be a comma-separated list of the load balancers\' addresses or CIDR ranges such as 10.0.0.5,192.0.2.0/28,2001:db8::/64';

/** Splits `a,b, c` into names; each a host name or an IP address. */
function certNames(value: string | readonly string[]): string[] {
  const list = typeof value === 'string' ? value.split(',') : [...value];
  return list.map((n) => n.trim()).filter((n) => n !== '');
}
const certNameOk = (n: string) => isIP(n) !== 0 || isDnsName(n);

const LOG_MAX_SIZE_RULE = `log-max-size must be ${BYTE_SIZE_RULE}, at least 1KiB`;
const ABANDONED_AGE_RULE = `s3-abandoned-upload-age must be ${DURATION_RULE}, at least 1s, or 0 for never`;
const RATE_TOTAL_RULE = 'rate-total must be a rate in bytes per second such as 512KiB or 100MiB, or 0 for no cap';

const port = (what: string) =>
  z.coerce
    .number({ error: `${what} must be a whole number from 0 to 65535` })
    .int(`${what} must be a whole number from 0 to 65535`)
    .min(0, `${what} must be a whole number from 0 to 65535`)
    .max(65535, `${what} must be a whole number from 0 to 65535`);

const WORKERS_RULE = 'workers must be a whole number from 0 to 256 (0: one per CPU, 1: a single process)';

const count = (what: string) =>
  z.coerce
    .number({ error: `${what} must be a whole number, 0 or more (0: no limit)` })
    .int(`${what} must be a whole number, 0 or more (0: no limit)`)
    .min(0, `${what} must be a whole number, 0 or more (0: no limit)`);

const seconds = (what: string) =>
  z.coerce
    .number({ error: `${what} must be a number of seconds, 0 or more` })
    .min(0, `${what} must be a number of seconds, 0 or more`)
    .max(86_400 * 7, `${what} must be at most 604800 seconds`);

/**
 * Everything `dfos serve` needs, validated. Each key maps to a flag (`pasvMin` →
 * `--pasv-min`) and an environment variable (`DFOS_PASV_MIN`). The defaults are the
 * embedded defaults that `npm start` runs with.
 */
export const serverConfigSchema = z
  .object({
    host: z
      .string()
      .refine((h) => isIP(h) !== 0 || h === 'localhost', 'host must be an IP address such as 0.0.0.0, 127.0.0.1, :: or ::1')
      .default('0.0.0.0'),
    port: port('port').default(2121),
    pasvMin: port('pasv-min').default(50000),
    pasvMax: port('pasv-max').default(50999),
    pasvAddress: z
      .string()
      .refine((h) => isIP(h) === 4, 'pasv-address must be an IPv4 address such as 203.0.113.7')
      .optional(),
    /** A directory, or `s3://BUCKET[/PREFIX]` for an S3 bucket. */
    storage: z.string().min(1, 'storage must be a directory path or s3://BUCKET[/PREFIX]').default('./server_storage'),
    /** S3 endpoint URL (Ceph RGW, MinIO…); path-style addressing when given. Default: AWS. */
    s3Endpoint: z
      .string()
      .refine((u) => /^https?:\/\/[^/\s]+/.test(u), 's3-endpoint must be an http:// or https:// URL such as http://127.0.0.1:7480')
      .optional(),
    s3Region: z.string().min(1, 's3-region must be a region name such as us-east-1').default('us-east-1'),
    /**
     * Seconds after which a multipart upload under the prefix with no part uploaded is
     * abandoned (its node died for good) and aborted by any node; 0: never. A number of
     * seconds or a duration such as 6h.
     */
    s3AbandonedUploadAge: z
      .union([z.number(), z.string().transform((text) => parseDuration(text) ?? Number.NaN)], { error: ABANDONED_AGE_RULE })
      .pipe(z.number({ error: ABANDONED_AGE_RULE }).refine((s) => s === 0 || s >= 1, ABANDONED_AGE_RULE))
      .default(86_400),
    /**
     * Local storage: `always` fsyncs each upload (and an append's undo journal) before it is
     * published; `never` leaves that to the page cache. Both stay atomic (temporary + rename).
     */
    fsync: z.enum(FSYNC_MODES, { error: `fsync must be one of ${FSYNC_MODES.join(', ')}` }).default('always'),
    users: z.string().min(1, 'users must be a file path').default('./users.json'),
    logDir: z.string().min(1, 'log-dir must be a directory path').default('./logs'),
    logLevel: z.enum(LOG_LEVELS, { error: `log-level must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    /** How dfos.log, audit.log and the xferlog are rotated (see LOG_ROTATIONS). */
    logRotate: z.enum(LOG_ROTATIONS, { error: `log-rotate must be one of ${LOG_ROTATIONS.join(', ')}` }).default('size'),
    /** With logRotate size: a file is rotated when it reaches this many bytes (a number, or 100MiB). */
    logMaxSize: z
      .union([z.number(), z.string().transform((text) => parseByteSize(text) ?? Number.NaN)], { error: LOG_MAX_SIZE_RULE })
      .pipe(z.number({ error: LOG_MAX_SIZE_RULE }).int(LOG_MAX_SIZE_RULE).min(1024, LOG_MAX_SIZE_RULE))
      .default(100 * 1024 * 1024),
    /** Rotated files kept per log (size: numbered files; daily: days); 0 keeps every one. */
    logMaxFiles: count('log-max-files').default(10),
    /** Also write one wu-ftpd xferlog line per finished transfer to this file; absent: no xferlog. */
    xferlog: z.string().min(1, 'xferlog must be a file path').optional(),
    shutdownGrace: seconds('shutdown-grace').default(30),
    idleTimeout: seconds('idle-timeout').default(300),
    /** A connection not logged in this long after it opened gets 421, busy or not (0 = never). */
    loginTimeout: seconds('login-timeout').default(60),
    /** A data connection with no bytes either way for this long gets 426 (0 = never). */
    dataTimeout: seconds('data-timeout').default(300),
    authFailDelay: seconds('auth-fail-delay').default(1),
    /**
     * Processes serving FTP (node:cluster): 1 is a single process; N forks N workers that
     * share the control port, each with its own slice of the passive range; 0 (the
     * default): one per CPU, so every core serves (a one-CPU machine runs a single process).
     */
    workers: z.coerce
      .number({ error: WORKERS_RULE })
      .int(WORKERS_RULE)
      .min(0, WORKERS_RULE)
      .max(256, WORKERS_RULE)
      .default(0),
    /** Open control connections at most (0 = no limit); the next gets 421 before the greeting. */
    maxSessions: count('max-sessions').default(1000),
    /** Failed logins on one connection before it is closed with 421 (0 = no limit). */
    maxLoginAttempts: count('max-login-attempts').default(3),
    /** Open control connections from one client address at most (0 = no limit). */
    maxSessionsPerIp: count('max-sessions-per-ip').default(50),
    /** Failed logins from one address within banWindow that ban it (0: the defender is off). */
    banThreshold: z.coerce
      .number({ error: 'ban-threshold must be a whole number, 0 or more (0: no banning)' })
      .int('ban-threshold must be a whole number, 0 or more (0: no banning)')
      .min(0, 'ban-threshold must be a whole number, 0 or more (0: no banning)')
      .default(10),
    /** The window (seconds) failed logins are counted in. */
    banWindow: seconds('ban-window').default(300),
    /** The first ban's length (seconds); each repeat ban of the same address doubles it. */
    banTime: seconds('ban-time').default(900),
    /** The longest ban (seconds). */
    banTimeMax: seconds('ban-time-max').default(86_400),
    /** Addresses and CIDR ranges (IPv4 or IPv6) never banned. */
    banAllow: z
      .union([z.string(), z.array(z.string())], { error: BAN_ALLOW_RULE })
      .transform(certNames)
      .refine((list) => list.every((e) => cidrProblem(e) === undefined), BAN_ALLOW_RULE)
      .default([]),
    /**
     * Load balancers (addresses and CIDR ranges, IPv4 or IPv6) whose connections must start
     * with a PROXY protocol header (v1 or v2) naming the real client; empty: PROXY protocol off.
     */
    trustedProxies: z
      .union([z.string(), z.array(z.string())], { error: TRUSTED_PROXIES_RULE })
      .transform(certNames)
      .refine((list) => list.every((e) => cidrProblem(e) === undefined), TRUSTED_PROXIES_RULE)
      .default([]),
    /** FTPS (RFC 4217): `off`, `on` (offered) or `required` (no login or data without it). */
    tls: z.enum(TLS_MODES, { error: `tls must be one of ${TLS_MODES.join(', ')}` }).default('on'),
    /** PEM certificate (a chain may follow it); with tlsKey. Neither: a generated one in stateDir. */
    tlsCert: z.string().min(1, 'tls-cert must be a PEM certificate file path').optional(),
    /** PEM private key of tlsCert (unencrypted). */
    tlsKey: z.string().min(1, 'tls-key must be a PEM private key file path').optional(),
    /** Where the server keeps what it generates (the self-signed certificate under tls/). */
    stateDir: z.string().min(1, 'state-dir must be a directory path').default('./state'),
    /** Extra names (host names or IP addresses) for the generated certificate. */
    tlsCertNames: z
      .union([z.string(), z.array(z.string())], { error: CERT_NAMES_RULE })
      .transform(certNames)
      .refine((names) => names.every(certNameOk), CERT_NAMES_RULE)
      .optional(),
    tlsMinVersion: z.enum(TLS_VERSIONS, { error: `tls-min-version must be ${TLS_VERSIONS.join(' or ')}` }).default('TLSv1.2'),
    /** Whether a protected data connection must resume the control connection's TLS session. */
    tlsSessionReuse: z
      .enum(TLS_SESSION_REUSE, { error: `tls-session-reuse must be ${TLS_SESSION_REUSE.join(' or ')}` })
      .default('required'),
    /** A second control port speaking TLS from the first byte (implicit FTPS); 0 or absent: none. */
    implicitTlsPort: port('implicit-tls-port').optional(),
    /** The admin HTTP listener (/metrics, /healthz, /readyz) as `HOST:PORT`, or `off`. */
    adminListen: z
      .string({ error: ADMIN_LISTEN_RULE })
      .refine((v) => v === 'off' || parseListenAddress(v) !== undefined, ADMIN_LISTEN_RULE)
      .default('127.0.0.1:9121'),
    /** A file holding the bearer token every admin request must carry (required off loopback). */
    adminTokenFile: z.string().min(1, 'admin-token-file must be a file path').optional(),
    /**
     * Bytes/s for all users together, for uploads and separately for downloads (listings and
     * previews included); 0: no cap. A number, or a size with units such as 100MiB.
     */
    rateTotal: z
      .union([z.number(), z.string().transform((text) => parseByteSize(text) ?? Number.NaN)], { error: RATE_TOTAL_RULE })
      .pipe(z.number({ error: RATE_TOTAL_RULE }).int(RATE_TOTAL_RULE).min(0, RATE_TOTAL_RULE))
      .default(0),
    /**
     * Shared state for several nodes (bans and failed-login scores, session counts, quota
     * usage) in this Redis; absent: each node keeps its own in memory.
     */
    redis: z.string({ error: REDIS_URL_RULE }).refine(isRedisUrl, REDIS_URL_RULE).optional(),
    /** Prefix of every Redis key, so several clusters can share one Redis. */
    redisPrefix: z.string({ error: REDIS_PREFIX_RULE }).refine(isRedisPrefix, REDIS_PREFIX_RULE).default('dfos:'),
    /** Write console logs (human-readable). Tests and embedded use turn it off. */
    console: z.boolean().default(true),
  })
  .refine((c) => c.pasvMin <= c.pasvMax, { message: 'pasv-min must not be greater than pasv-max', path: ['pasvMin'] })
  .refine((c) => c.pasvMin > 0 || c.pasvMax === 0, {
    message: 'pasv-min must be 1 or more (use 0 for both to let the system pick passive ports)',
    path: ['pasvMin'],
  })
  .refine((c) => c.tlsKey === undefined || c.tlsCert !== undefined, {
    message: 'tls-key needs tls-cert too (give both, or neither for a generated certificate)',
    path: ['tlsKey'],
  })
  .refine((c) => c.tlsCert === undefined || c.tlsKey !== undefined, {
    message: 'tls-cert needs tls-key too (give both, or neither for a generated certificate)',
    path: ['tlsCert'],
  })
  .refine((c) => !c.implicitTlsPort || c.tls !== 'off', {
    message: 'implicit-tls-port needs tls on or required',
    path: ['implicitTlsPort'],
  })
  .refine((c) => c.adminListen === 'off' || c.adminTokenFile !== undefined || isLoopbackAddress(parseListenAddress(c.adminListen)?.host), {
    message: 'admin-listen on an address other than loopback needs admin-token-file (a file holding the bearer token), or use 127.0.0.1:PORT',
    path: ['adminListen'],
  })
  .refine((c) => c.workers <= 1 || c.pasvMax === 0 || c.pasvMax - c.pasvMin + 1 >= workerCount(c.workers), {
    message: 'the passive range is smaller than the number of workers: widen pasv-min..pasv-max or lower workers',
    path: ['workers'],
  })
  .refine((c) => !c.implicitTlsPort || c.implicitTlsPort !== c.port, {
    message: 'implicit-tls-port must differ from port',
    path: ['implicitTlsPort'],
  });

/** How many worker processes `workers` asks for: 0 is one per CPU (os.availableParallelism()). */
export function workerCount(workers: number): number {
  return workers === 0 ? availableParallelism() : workers;
}

/** Validated server configuration. */
export type ServerConfig = z.output<typeof serverConfigSchema>;
/** What a caller may pass: every key optional, strings accepted for numbers. */
export type ServerConfigInput = z.input<typeof serverConfigSchema>;

/** Parses and validates a configuration; throws a ZodError naming the bad key. */
export function parseServerConfig(input: ServerConfigInput): ServerConfig {
  return serverConfigSchema.parse(input);
}
