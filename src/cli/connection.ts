import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { prompt } from './password.js';
import type { DfosClient, DfosConnectOptions, ProgressHandler } from '../client/index.js';
import { normalizeFingerprint } from '../client/tls.js';
import { parseServerUrl as parseUrl, redactUrl } from '../client/url.js';
import { CliError, usageError } from './errors.js';

/**
 * What the client commands (put, get, ls, rm, view, mkdir, mv) share: the `--url` option
 * and the FTPS options (`--ca`, `--fingerprint`, `--insecure`), the password (DFOS_PASSWORD or a prompt without echo), connecting, turning client errors
 * into exit codes, and the put/get progress bar.
 *
 * Exit codes: 1 for a remote failure (the message names the path and the server's reason),
 * 2 for a usage error, 3 when the server cannot be reached or refuses the login.
 */

/** Exit code for a connection or authentication failure. */
export const EXIT_CONNECTION = 3;

const URL_FORM = 'ftp://user@host:port';

/** `--url ftp://user@host:port` (env DFOS_URL), added to every client command. */
export function urlOption(): Option {
  return new Option(
    '--url <url>',
    `server and user, ${URL_FORM} (default port 21); ftpes:// for explicit TLS (port 21), ftps:// for implicit TLS (port 990)`,
  ).env('DFOS_URL');
}

/* The FTPS verification options (with ftpes:// or ftps:// URLs), added to every client command. */

/** `--ca FILE` (env DFOS_CA). */
export function caOption(): Option {
  return new Option('--ca <file>', "FTPS: trust only this CA (PEM file) for the server's certificate").env('DFOS_CA');
}

/** `--fingerprint SHA256` (env DFOS_FINGERPRINT). */
export function fingerprintOption(): Option {
  return new Option('--fingerprint <sha256>', "FTPS: accept only a certificate with this SHA-256 fingerprint (AA:BB:…), whatever its chain").env(
    'DFOS_FINGERPRINT',
  );
}

/** `--insecure` (env DFOS_INSECURE=1, read in connectOptionsFor: commander would take any value, even 0, as true). */
export function insecureOption(): Option {
  return new Option('--insecure', "FTPS: do not verify the server's certificate at all (env DFOS_INSECURE=1)");
}

/** Help text shared by the client commands. */
export const CONNECTION_HELP = `
The server comes from --url or DFOS_URL (${URL_FORM}); the password from DFOS_PASSWORD,
or it is asked for without echo. A password inside the URL works but ends up in the shell
history and the process list: prefer DFOS_PASSWORD or the prompt.
FTPS: ftpes://user@host (AUTH TLS, port 21) or ftps://user@host (implicit TLS, port 990).
The server's certificate is verified against the system CAs, or against --ca FILE, or
pinned with --fingerprint SHA256 (for a self-signed server); --insecure skips verification.
Exit codes: 0 ok, 1 remote failure, 2 usage error, 3 connection or login failure.`;

/** Where the connection settings came from, to name them in messages. */
function urlSource(cmd: Command): string {
  return cmd.getOptionValueSource('url') === 'env' ? 'DFOS_URL' : '--url';
}

/** Parses `ftp[e]s://user[:password]@host[:port]` into connect options (password possibly missing). */
export function parseServerUrl(text: string, source = '--url'): Omit<DfosConnectOptions, 'password'> & { password?: string } {
  const parsed = parseUrl(text);
  if (typeof parsed === 'string') {
    throw usageError(`${source} ${parsed}; expected ${URL_FORM}, ftpes://… or ftps://… (got ${JSON.stringify(redactUrl(text))})`);
  }
  return parsed;
}

/** Where an option's value came from, as the user wrote it: the flag or the environment variable. */
function optionName(cmd: Command, key: string, flag: string, envVar: string): string {
  return cmd.getOptionValueSource(key) === 'env' ? envVar : `--${flag}`;
}

/** DFOS_INSECURE as a boolean: 1/true/yes or 0/false/no (or unset, empty). */
function insecureFromEnv(): boolean {
  const value = (process.env.DFOS_INSECURE ?? '').trim().toLowerCase();
  if (value === '' || value === '0' || value === 'false' || value === 'no') return false;
  if (value === '1' || value === 'true' || value === 'yes') return true;
  throw usageError(`DFOS_INSECURE must be 1 or 0 (got ${JSON.stringify(process.env.DFOS_INSECURE)})`);
}

/** The FTPS verification settings of a command, checked (the CA file read) before connecting. */
async function tlsSettingsFor(cmd: Command, secure: DfosConnectOptions['secure']): Promise<Pick<DfosConnectOptions, 'ca' | 'fingerprint' | 'insecure'>> {
  const opts = cmd.opts<{ ca?: string; fingerprint?: string; insecure?: boolean }>();
  const given: Array<[string, unknown]> = [
    [optionName(cmd, 'ca', 'ca', 'DFOS_CA'), opts.ca],
    [optionName(cmd, 'fingerprint', 'fingerprint', 'DFOS_FINGERPRINT'), opts.fingerprint],
    [opts.insecure === true ? '--insecure' : 'DFOS_INSECURE', opts.insecure === true || insecureFromEnv() ? true : undefined],
  ];
  const set = given.filter(([, value]) => value !== undefined && value !== '');
  if (set.length > 1) throw usageError(`use only one of --ca, --fingerprint and --insecure (got ${set.map(([name]) => name).join(' and ')})`);
  const [name] = set[0] ?? [];
  if (name === undefined) return {};
  if (secure === false || secure === undefined) throw usageError(`${name} needs an ftpes:// or ftps:// URL (TLS)`);
  if (opts.fingerprint !== undefined && opts.fingerprint !== '') {
    const fingerprint = normalizeFingerprint(opts.fingerprint);
    if (fingerprint === undefined) {
      throw usageError(`${name} must be a SHA-256 fingerprint, 64 hex digits as AA:BB:… (got ${JSON.stringify(opts.fingerprint)})`);
    }
    return { fingerprint };
  }
  if (opts.ca !== undefined && opts.ca !== '') {
    const pem = await readFile(opts.ca).catch((err: NodeJS.ErrnoException) => {
      throw usageError(`${name} ${opts.ca}: cannot read: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    });
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw usageError(`${name} ${opts.ca}: not a PEM certificate file`);
    return { ca: pem };
  }
  return { insecure: true };
}

/** The connect options for a command: URL and TLS settings, then the password from the URL, DFOS_PASSWORD or a prompt. */
export async function connectOptionsFor(cmd: Command): Promise<DfosConnectOptions> {
  const { url } = cmd.opts<{ url?: string }>();
  if (url === undefined || url === '') {
    throw usageError(`no server given: use --url ${URL_FORM} or set DFOS_URL`);
  }
  const { secure, ...parsed } = parseServerUrl(url, urlSource(cmd));
  const tls = { secure, ...(await tlsSettingsFor(cmd, secure)) };
  let password = parsed.password ?? process.env.DFOS_PASSWORD;
  if (password === undefined || password === '') {
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      throw usageError(`no password for ${parsed.user}: set DFOS_PASSWORD, or run in a terminal to be asked for it`);
    }
    password = await prompt(`Password for ${parsed.user}@${parsed.host}:${parsed.port}: `, process.stderr);
  }
  return { ...parsed, ...tls, password };
}

/**
 * Connects with the command's settings, runs `fn`, closes the client, and turns client
 * errors into one-line CLI errors with the right exit code.
 */
export async function withClient<T>(cmd: Command, fn: (client: DfosClient) => Promise<T>): Promise<T> {
  const options = await connectOptionsFor(cmd);
  const { DfosClient, DfosError, ConnectionError, AuthError, TlsVerificationError } = await import('../client/index.js');
  let client: DfosClient | undefined;
  try {
    client = await DfosClient.connect(options);
    return await fn(client);
  } catch (err) {
    // 3 when the server cannot be reached, is not who it should be, or refuses the login; 1 for every other remote failure.
    if (err instanceof TlsVerificationError && options.fingerprint === undefined) {
      throw new CliError(`${err.message}; to trust this server: --ca FILE, --fingerprint SHA256 or --insecure`, EXIT_CONNECTION);
    }
    if (err instanceof ConnectionError || err instanceof AuthError) throw new CliError(err.message, EXIT_CONNECTION);
    if (err instanceof DfosError) throw new CliError(err.message, 1);
    throw err;
  } finally {
    client?.close();
  }
}

/** A progress display for one transfer: a handler for DfosClient and a stop() for the end. */
export interface TransferProgress {
  onProgress: ProgressHandler | undefined;
  stop(): void;
}

function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * A cli-progress bar on stderr (size, rate, ETA) when stderr is a terminal; nothing at
 * all otherwise, so scripts and pipes see no progress output.
 */
export async function transferProgress(label: string): Promise<TransferProgress> {
  if (!process.stderr.isTTY) return { onProgress: undefined, stop: () => undefined };
  const { default: cliProgress } = await import('cli-progress');
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {done} of {size} | {rate} | ETA {eta_formatted}`,
      stream: process.stderr,
      hideCursor: true,
      etaBuffer: 50,
      fps: 10,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  let startTime = 0;
  let startBytes = 0;
  const payload = (bytes: number, total: number) => {
    const seconds = (Date.now() - startTime) / 1000;
    const rate = seconds > 0 ? (bytes - startBytes) / seconds : 0;
    return { done: humanBytes(bytes), size: humanBytes(total), rate: `${humanBytes(Math.round(rate))}/s` };
  };
  return {
    onProgress: ({ bytes, totalBytes }) => {
      const total = totalBytes ?? Math.max(bytes, 1);
      if (!started) {
        started = true;
        startTime = Date.now();
        startBytes = bytes;
        bar.start(total, bytes, payload(bytes, total));
        return;
      }
      bar.setTotal(total);
      bar.update(bytes, payload(bytes, total));
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}
