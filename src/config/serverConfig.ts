import { isIP } from 'node:net';
import { z } from 'zod';

/** Log levels accepted by `--log-level`; `trace` also shows ftp-srv's per-command tracing. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const port = (what: string) =>
  z.coerce
    .number({ error: `${what} must be a whole number from 0 to 65535` })
    .int(`${what} must be a whole number from 0 to 65535`)
    .min(0, `${what} must be a whole number from 0 to 65535`)
    .max(65535, `${what} must be a whole number from 0 to 65535`);

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
    users: z.string().min(1, 'users must be a file path').default('./users.json'),
    logDir: z.string().min(1, 'log-dir must be a directory path').default('./logs'),
    logLevel: z.enum(LOG_LEVELS, { error: `log-level must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
    shutdownGrace: seconds('shutdown-grace').default(30),
    idleTimeout: seconds('idle-timeout').default(300),
    /** A connection not logged in this long after it opened gets 421, busy or not (0 = never). */
    loginTimeout: seconds('login-timeout').default(60),
    /** A data connection with no bytes either way for this long gets 426 (0 = never). */
    dataTimeout: seconds('data-timeout').default(300),
    authFailDelay: seconds('auth-fail-delay').default(1),
    /** Write console logs (human-readable). Tests and embedded use turn it off. */
    console: z.boolean().default(true),
  })
  .refine((c) => c.pasvMin <= c.pasvMax, { message: 'pasv-min must not be greater than pasv-max', path: ['pasvMin'] })
  .refine((c) => c.pasvMin > 0 || c.pasvMax === 0, {
    message: 'pasv-min must be 1 or more (use 0 for both to let the system pick passive ports)',
    path: ['pasvMin'],
  });

/** Validated server configuration. */
export type ServerConfig = z.output<typeof serverConfigSchema>;
/** What a caller may pass: every key optional, strings accepted for numbers. */
export type ServerConfigInput = z.input<typeof serverConfigSchema>;

/** Parses and validates a configuration; throws a ZodError naming the bad key. */
export function parseServerConfig(input: ServerConfigInput): ServerConfig {
  return serverConfigSchema.parse(input);
}
