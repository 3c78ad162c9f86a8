import { Option, type Command } from 'commander';
import { prompt } from './password.js';
import type { DfosClient, DfosConnectOptions, ProgressHandler } from '../client/index.js';
import { CliError, usageError } from './errors.js';

/**
 * What the client commands (put, get, ls, rm, view, mkdir, mv) share: the `--url` option,
 * the password (DFOS_PASSWORD or a prompt without echo), connecting, turning client errors
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
  return new Option('--url <url>', `server and user, ${URL_FORM} (default port 21)`).env('DFOS_URL');
}

/** Help text shared by the client commands. */
export const CONNECTION_HELP = `
The server comes from --url or DFOS_URL (${URL_FORM}); the password from DFOS_PASSWORD,
or it is asked for without echo. A password inside the URL works but ends up in the shell
history and the process list: prefer DFOS_PASSWORD or the prompt.
Exit codes: 0 ok, 1 remote failure, 2 usage error, 3 connection or login failure.`;

/** Where the connection settings came from, to name them in messages. */
function urlSource(cmd: Command): string {
  return cmd.getOptionValueSource('url') === 'env' ? 'DFOS_URL' : '--url';
}

/** Parses `ftp://user[:password]@host[:port]` into connect options (password possibly missing). */
export function parseServerUrl(text: string, source = '--url'): Omit<DfosConnectOptions, 'password'> & { password?: string } {
  const bad = (why: string) => usageError(`${source} ${why}; expected ${URL_FORM} (got ${JSON.stringify(redactUrl(text))})`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw bad('is not a URL');
  }
  if (url.protocol !== 'ftp:') throw bad(`must start with ftp:// (FTPS comes later)`);
  if (url.username === '') throw bad('has no user name');
  if (url.hostname === '') throw bad('has no host');
  if (url.pathname !== '' && url.pathname !== '/') throw bad('must not contain a path');
  if (url.search !== '' || url.hash !== '') throw bad('must not contain ? or #');
  let user: string;
  let password: string | undefined;
  try {
    user = decodeURIComponent(url.username);
    password = url.password === '' ? undefined : decodeURIComponent(url.password);
  } catch {
    throw bad('has a malformed %-escape');
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port === '' ? 21 : Number(url.port);
  return password === undefined ? { host, port, user } : { host, port, user, password };
}

/** The URL with any password replaced by `***` (for messages). */
function redactUrl(text: string): string {
  return text.replace(/^(\w+:\/\/[^:@/]*):[^@/]*@/, '$1:***@');
}

/** The connect options for a command: URL, then the password from the URL, DFOS_PASSWORD or a prompt. */
export async function connectOptionsFor(cmd: Command): Promise<DfosConnectOptions> {
  const { url } = cmd.opts<{ url?: string }>();
  if (url === undefined || url === '') {
    throw usageError(`no server given: use --url ${URL_FORM} or set DFOS_URL`);
  }
  const parsed = parseServerUrl(url, urlSource(cmd));
  let password = parsed.password ?? process.env.DFOS_PASSWORD;
  if (password === undefined || password === '') {
    if (!process.stdin.isTTY || !process.stderr.isTTY) {
      throw usageError(`no password for ${parsed.user}: set DFOS_PASSWORD, or run in a terminal to be asked for it`);
    }
    password = await prompt(`Password for ${parsed.user}@${parsed.host}:${parsed.port}: `, process.stderr);
  }
  return { ...parsed, password };
}

/**
 * Connects with the command's settings, runs `fn`, closes the client, and turns client
 * errors into one-line CLI errors with the right exit code.
 */
export async function withClient<T>(cmd: Command, fn: (client: DfosClient) => Promise<T>): Promise<T> {
  const options = await connectOptionsFor(cmd);
  const { DfosClient, DfosError, ConnectionError, AuthError } = await import('../client/index.js');
  let client: DfosClient | undefined;
  try {
    client = await DfosClient.connect(options);
    return await fn(client);
  } catch (err) {
    // 3 when the server cannot be reached or refuses the login, 1 for every other remote failure.
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
