import { Option, type Command } from 'commander';
import { LOG_LEVELS, LOG_ROTATIONS, workerCount } from '../config/serverConfig.js';
import { operationError } from './errors.js';
import { envVarFor } from './options.js';
import { configFileOption, schemaDefaults, serveConfigFile, resolveServeConfig, type ServeFlag } from './serveConfig.js';


/**
 * Every `dfos serve` flag; each also reads DFOS_<FLAG> from the environment and is a key of
 * the config file (dfos.yaml), so a flag added here is all three at once.
 */
export const SERVE_FLAGS: readonly ServeFlag[] = [
  { key: 'host', flag: 'host', arg: '<address>', help: 'IP address to listen on', kind: 'string' },
  { key: 'port', flag: 'port', arg: '<number>', help: 'control port (0-65535)', kind: 'integer' },
  { key: 'pasvMin', flag: 'pasv-min', arg: '<number>', help: 'lowest passive data port', kind: 'integer' },
  { key: 'pasvMax', flag: 'pasv-max', arg: '<number>', help: 'highest passive data port', kind: 'integer' },
  {
    key: 'pasvAddress',
    flag: 'pasv-address',
    arg: '<ipv4>',
    help: 'IPv4 address announced to clients in PASV replies (default: the address the client connected to)',
    kind: 'string',
  },
  {
    key: 'storage',
    flag: 'storage',
    arg: '<dir|s3://bucket[/prefix]>',
    help: 'directory holding one folder per user, or an S3 bucket (each user under PREFIX/<user>/)',
    kind: 'string',
  },
  { key: 's3Endpoint', flag: 's3-endpoint', arg: '<url>', help: 'S3 endpoint URL (path-style), e.g. http://127.0.0.1:7480 for Ceph RGW', kind: 'string' },
  { key: 's3Region', flag: 's3-region', arg: '<region>', help: 'S3 region', kind: 'string' },
  {
    key: 's3AbandonedUploadAge',
    flag: 's3-abandoned-upload-age',
    arg: '<duration>',
    help: 'abort multipart uploads under the prefix that had no part uploaded for this long (left by a node that never came back): seconds, or e.g. 90m, 6h; 0: never',
    kind: 'string',
  },
  {
    key: 'fsync',
    flag: 'fsync',
    arg: '<always|never>',
    help: 'local storage: always makes each upload durable (fsync) before 226; never leaves it to the page cache (faster, still atomic: temporary + rename). S3: not applicable',
    kind: 'string',
  },
  { key: 'users', flag: 'users', arg: '<file>', help: 'users file (reloaded when it changes)', kind: 'string' },
  { key: 'logDir', flag: 'log-dir', arg: '<dir>', help: 'directory for log files', kind: 'string' },
  { key: 'logLevel', flag: 'log-level', arg: '<level>', help: `one of ${LOG_LEVELS.join(', ')}`, kind: 'string' },
  {
    key: 'shutdownGrace',
    flag: 'shutdown-grace',
    arg: '<seconds>',
    help: 'on SIGTERM/SIGINT, how long running transfers may finish',
    kind: 'seconds',
  },
  { key: 'idleTimeout', flag: 'idle-timeout', arg: '<seconds>', help: 'disconnect idle sessions after this', kind: 'seconds' },
  { key: 'loginTimeout', flag: 'login-timeout', arg: '<seconds>', help: 'disconnect connections not logged in after this', kind: 'seconds' },
  { key: 'dataTimeout', flag: 'data-timeout', arg: '<seconds>', help: 'cut a data connection with no traffic for this long (426)', kind: 'seconds' },
  {
    key: 'tls',
    flag: 'tls',
    arg: '<off|on|required>',
    help: 'FTPS: on offers AUTH TLS (and the implicit port); required refuses login and data without TLS',
    kind: 'string',
  },
  { key: 'tlsCert', flag: 'tls-cert', arg: '<file>', help: 'PEM certificate (chain after it); with --tls-key. Default: a generated one', kind: 'string' },
  { key: 'tlsKey', flag: 'tls-key', arg: '<file>', help: 'PEM private key of --tls-cert (unencrypted)', kind: 'string' },
  {
    key: 'tlsCertNames',
    flag: 'tls-cert-names',
    arg: '<a,b,...>',
    help: 'extra DNS names or IP addresses for the generated certificate (always: localhost, 127.0.0.1, ::1, this host\'s name)',
    kind: 'string',
  },
  { key: 'tlsMinVersion', flag: 'tls-min-version', arg: '<TLSv1.2|TLSv1.3>', help: 'lowest TLS version accepted', kind: 'string' },
  {
    key: 'tlsSessionReuse',
    flag: 'tls-session-reuse',
    arg: '<required|off>',
    help: 'required: a TLS data connection must resume the control connection\'s TLS session',
    kind: 'string',
  },
  { key: 'implicitTlsPort', flag: 'implicit-tls-port', arg: '<number>', help: 'also listen for implicit FTPS (TLS from the first byte) here; 0: off', kind: 'integer' },
  { key: 'maxLoginAttempts', flag: 'max-login-attempts', arg: '<number>', help: 'failed logins on one connection before it is closed (0: no limit)', kind: 'integer' },
  { key: 'maxSessions', flag: 'max-sessions', arg: '<number>', help: 'open connections at most (0: no limit)', kind: 'integer' },
  { key: 'maxSessionsPerIp', flag: 'max-sessions-per-ip', arg: '<number>', help: 'open connections from one address at most (0: no limit)', kind: 'integer' },
  { key: 'stateDir', flag: 'state-dir', arg: '<dir>', help: 'directory for server state (the generated certificate in tls/, bans in bans.json)', kind: 'string' },
  { key: 'banThreshold', flag: 'ban-threshold', arg: '<number>', help: 'failed logins from one address within --ban-window that ban it (0: no banning)', kind: 'integer' },
  { key: 'banWindow', flag: 'ban-window', arg: '<seconds>', help: 'how long failed logins count towards a ban', kind: 'seconds' },
  { key: 'banTime', flag: 'ban-time', arg: '<seconds>', help: 'length of the first ban; doubles with each repeat ban of the same address', kind: 'seconds' },
  { key: 'banTimeMax', flag: 'ban-time-max', arg: '<seconds>', help: 'longest ban', kind: 'seconds' },
  { key: 'banAllow', flag: 'ban-allow', arg: '<cidr,...>', help: 'addresses or CIDR ranges never banned', kind: 'string' },
  {
    key: 'trustedProxies',
    flag: 'trusted-proxies',
    arg: '<cidr,...>',
    help: 'load balancers that must send a PROXY protocol (v1/v2) header naming the real client; empty: PROXY protocol off',
    kind: 'string',
  },
  {
    key: 'logRotate',
    flag: 'log-rotate',
    arg: `<${LOG_ROTATIONS.join('|')}>`,
    help: 'rotate the log files at --log-max-size, daily (local midnight), or none (system logrotate; SIGHUP reopens them)',
    kind: 'string',
  },
  { key: 'logMaxSize', flag: 'log-max-size', arg: '<size>', help: 'with --log-rotate size: rotate a log file at this size, e.g. 100MiB', kind: 'string' },
  { key: 'logMaxFiles', flag: 'log-max-files', arg: '<number>', help: 'rotated files kept per log (days with --log-rotate daily; 0: keep all)', kind: 'integer' },
  { key: 'xferlog', flag: 'xferlog', arg: '<file>', help: 'also write a wu-ftpd xferlog line per finished transfer to this file', kind: 'string' },
  {
    key: 'adminListen',
    flag: 'admin-listen',
    arg: '<host:port|off>',
    help: 'admin HTTP listener for the status page, /metrics, /healthz and /readyz; off: none',
    kind: 'string',
  },
  { key: 'adminTokenFile', flag: 'admin-token-file', arg: '<file>', help: 'file holding the bearer token admin requests must carry (needed off loopback)', kind: 'string' },
  {
    key: 'rateTotal',
    flag: 'rate-total',
    arg: '<bytes/s>',
    help: 'cap for all users together, on uploads and separately on downloads, e.g. 100MiB (0: no cap)',
    kind: 'string',
  },
  {
    key: 'redis',
    flag: 'redis',
    arg: '<url>',
    help: 'share bans, session counts and quota usage with the other nodes through this Redis (redis://[user:pass@]host:port[/db], rediss:// for TLS); none: in memory',
    kind: 'string',
  },
  { key: 'redisPrefix', flag: 'redis-prefix', arg: '<prefix>', help: 'prefix of every Redis key (one per cluster sharing a Redis)', kind: 'string' },
  {
    key: 'workers',
    flag: 'workers',
    arg: '<number>',
    help: 'processes serving FTP on every core (node:cluster): each takes connections on the shared control port and owns a slice of the passive range; 0: one per CPU; 1: a single process',
    kind: 'integer',
  },
  {
    key: 'authFailDelay',
    flag: 'auth-fail-delay',
    arg: '<seconds>',
    help: 'delay before answering a failed login',
    kind: 'seconds',
  },
];

/** Adds every serve flag (each with its DFOS_* twin) to `cmd`; `dfos config check` takes them too. */
export function addServeOptions(cmd: Command): Command {
  const dflt = schemaDefaults();
  for (const f of SERVE_FLAGS) {
    const d = dflt[f.key];
    const help = d === undefined ? f.help : `${f.help} (default: ${String(d)})`;
    cmd.addOption(new Option(`--${f.flag} ${f.arg}`, help).env(envVarFor(f.flag)));
  }
  return cmd;
}

/** Registers `dfos serve`. */
export function registerServe(program: Command): void {
  const cmd = program
    .command('serve')
    .description('run the FTP server in the foreground until SIGTERM/SIGINT')
    .addHelpText(
      'after',
      '\nEvery flag can also be set in the environment as DFOS_<FLAG>, e.g. DFOS_PORT=2121, and in the config file ' +
        '(--config, or ./dfos.yaml when present) as <flag>: value. Flags win over the environment, the environment over the file.',
    )
    .addOption(configFileOption());
  addServeOptions(cmd);
  cmd.action(async (_opts: unknown, self: Command) => {
    const file = serveConfigFile(self);
    const { config } = await resolveServeConfig(self, SERVE_FLAGS, file);
    // Loaded only here, so `dfos users …` and future client commands do not load the server.
    const { runServer } = await import('../server/runServer.js');
    const cluster = (await import('node:cluster')).default;
    try {
      // SIGHUP re-reads the file; flags and the environment are fixed for the process.
      const options = { reloadConfig: async () => (await resolveServeConfig(self, SERVE_FLAGS, file)).config };
      if (cluster.isPrimary && workerCount(config.workers) > 1) {
        const { runWorkers } = await import('../server/workers.js');
        await runWorkers(config, options);
      } else {
        await runServer(config, options);
      }
    } catch (err) {
      throw operationError(`serve failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
}
