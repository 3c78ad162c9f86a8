/**
 * The one place that reaches into ftp-srv 4.6.3's internals. Its package has no exports
 * map, so deep requires work; they are checked at load time, so an upgrade that moves
 * them fails loudly at startup instead of silently running unpatched.
 */
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import type { Server, Socket } from 'node:net';

const require = createRequire(import.meta.url);

/** The exact ftp-srv version these patches were written and tested against. */
export const FTP_SRV_VERSION = '4.6.3';

/** A parsed command as ftp-srv passes it to handlers. */
export interface FtpCommand {
  directive: string;
  arg: string | null;
  flags: string[];
  raw: string;
}

/** One reply line in ftp-srv's `reply()` letter form. */
export type ReplyLetter = string | { message: string; raw?: boolean; socket?: Socket };

/** ftp-srv's data connection manager (connector/passive.js, active.js, base.js). */
export interface FtpConnector {
  type: 'passive' | 'active' | false;
  dataSocket: Socket | null;
  dataServer: Server | null;
  readonly socket: Socket | null;
  waitForConnection(): Promise<Socket>;
  end(): void;
}

/** The subset of ftp-srv's FtpConnection (connection.js) DFOS uses. */
export interface FtpConnection extends EventEmitter {
  id: string;
  server: FtpServerInternal;
  commandSocket: Socket;
  connector: FtpConnector;
  commands: FtpCommands;
  fs: unknown;
  username?: string;
  authenticated?: boolean;
  encoding: BufferEncoding;
  /** TYPE: 'ascii' (TYPE A) or 'binary' (TYPE I). */
  transferType: 'ascii' | 'binary';
  restByteCount: number | undefined;
  renameFrom?: string;
  log: BunyanLike;
  readonly ip: string | undefined;
  reply(options: number | { code?: number; socket?: Socket; useEmptyMessage?: boolean }, ...letters: ReplyLetter[]): Promise<void>;
  close(code?: number, message?: string): Promise<void>;
  login(username: string, password: string): Promise<void>;
  _handleData(data: Buffer): unknown;
}

/** ftp-srv's per-connection command dispatcher (commands/index.js). */
export interface FtpCommands {
  connection: FtpConnection;
  previousCommand: FtpCommand | Record<string, never>;
  parse(message: string): FtpCommand;
  handle(command: string | FtpCommand): Promise<unknown>;
}

/** A command handler, called with `this` bound to the connection. */
export type CommandHandler = (this: FtpConnection, args: { log: BunyanLike; command: FtpCommand; previous_command?: unknown }) => unknown;

/** One entry of ftp-srv's command registry (commands/registry.js). */
export interface CommandEntry {
  directive: string | string[];
  handler: CommandHandler;
  syntax: string;
  description: string;
  flags?: { no_auth?: boolean; feat?: string };
}

/** The bunyan-shaped logger ftp-srv requires in its `log` option. */
export interface BunyanLike {
  child(fields: Record<string, unknown>): BunyanLike;
  trace(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  fatal(...args: unknown[]): void;
}

/** The subset of ftp-srv's FtpServer (index.js) DFOS uses. */
export interface FtpServerInternal extends EventEmitter {
  server: Server;
  /** The bunyan-shaped logger given as the `log` option. */
  log: BunyanLike;
  options: Record<string, unknown>;
  url: { hostname: string | null; port: string | null };
  listen(): Promise<unknown>;
  close(): Promise<unknown>;
}

/** Constructor of ftp-srv's FtpServer. */
export type FtpServerConstructor = new (options: Record<string, unknown>) => FtpServerInternal;

function load<T>(path: string, check: (m: T) => boolean, what: string): T {
  const m = require(path) as T;
  if (!check(m)) {
    throw new Error(`ftp-srv internals changed: ${what} (${path}) is not what DFOS expects; install ftp-srv@${FTP_SRV_VERSION} exactly`);
  }
  return m;
}

const pkg = require('ftp-srv/package.json') as { version: string };
if (pkg.version !== FTP_SRV_VERSION) {
  throw new Error(`DFOS needs ftp-srv ${FTP_SRV_VERSION} exactly, found ${pkg.version}; run npm ci`);
}

/** ftp-srv's server class. */
export const FtpSrv = load<{ FtpSrv: FtpServerConstructor }>('ftp-srv', (m) => typeof m.FtpSrv === 'function', 'FtpSrv export').FtpSrv;

/** ftp-srv's connection class; its prototype is patched for line buffering. */
export const ConnectionClass = load<{ prototype: FtpConnection; new (server: FtpServerInternal, options: { log: BunyanLike; socket: Socket }): FtpConnection }>(
  'ftp-srv/src/connection.js',
  (m) => typeof (m as unknown) === 'function' && typeof m.prototype._handleData === 'function',
  'FtpConnection._handleData',
);

/** The uuid module ftp-srv's connection class names each connection with (`uuid.v4()`, looked up at every call). */
export const connectionIds = load<{ v4: () => string }>(
  createRequire(require.resolve('ftp-srv/src/connection.js')).resolve('uuid'),
  (m) => typeof m.v4 === 'function',
  'uuid.v4 used by FtpConnection',
);

/** ftp-srv's command dispatcher class; its prototype is patched. */
export const CommandsClass = load<{ prototype: FtpCommands }>(
  'ftp-srv/src/commands/index.js',
  (m) => typeof (m as unknown) === 'function' && typeof m.prototype.handle === 'function' && typeof m.prototype.parse === 'function',
  'FtpCommands.handle/parse',
);

/** ftp-srv's mutable command registry, keyed by verb. */
export const commandRegistry = load<Record<string, CommandEntry>>(
  'ftp-srv/src/commands/registry.js',
  (m) => typeof m === 'object' && typeof m.STOR?.handler === 'function' && typeof m.SITE?.handler === 'function',
  'command registry',
);
