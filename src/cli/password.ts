import { read } from 'read';
import { CliError, operationError, usageError } from './errors.js';

const MAX_LINE = 64 * 1024;

/** Reads the first line of a stream (without its line ending), then stops reading and closes it. */
export function readFirstLine(stream: NodeJS.ReadableStream & { destroy?: () => void }): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const finish = (err: Error | null, line?: string) => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.pause();
      // Let the process exit even if the writer keeps the pipe open after the first line.
      stream.destroy?.();
      if (err) reject(err);
      else resolve((line ?? '').replace(/\r$/, ''));
    };
    const onData = (chunk: string | Buffer) => {
      buf += chunk.toString();
      const nl = buf.indexOf('\n');
      if (nl !== -1) finish(null, buf.slice(0, nl));
      else if (buf.length > MAX_LINE) finish(usageError('the password read from stdin has no line end in its first 64 KiB'));
    };
    const onEnd = () => finish(null, buf);
    const onError = (err: Error) => finish(operationError(`cannot read stdin: ${err.message}`));
    stream.setEncoding('utf8');
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.resume();
  });
}

/** Reads one line typed at the terminal without echo; Ctrl-C is a CliError with exit 130. */
export async function prompt(text: string, output: NodeJS.WritableStream): Promise<string> {
  try {
    return await read({ prompt: text, silent: true, replace: '', input: process.stdin, output, terminal: true });
  } catch (err) {
    if (err instanceof Error && err.message === 'canceled') throw new CliError('cancelled', 130);
    throw err;
  } finally {
    output.write('\n'); // the Enter typed at a silent prompt is not echoed
  }
}

/**
 * Gets a new password for `user`: the first line of stdin with `fromStdin`, otherwise typed
 * twice at the terminal without echo. Refuses an empty password, and refuses to prompt when
 * there is no terminal (the caller should pipe it with --password-stdin).
 */
export async function readNewPassword(user: string, command: string, fromStdin: boolean): Promise<string> {
  const example = `printf '%s\\n' "$PASSWORD" | dfos users ${command} ${user} --password-stdin`;
  if (fromStdin) {
    const password = await readFirstLine(process.stdin);
    if (password === '') throw usageError(`empty password refused (stdin gave an empty first line); e.g. ${example}`);
    return password;
  }
  const output = process.stderr.isTTY ? process.stderr : process.stdout.isTTY ? process.stdout : null;
  if (!process.stdin.isTTY || !output) {
    throw usageError(`stdin is not a terminal, so the password cannot be typed; use --password-stdin, e.g. ${example}`);
  }
  const password = await prompt('Password:', output);
  if (password === '') throw usageError('empty password refused');
  const again = await prompt('Repeat password:', output);
  if (again !== password) throw operationError('the passwords do not match; nothing was changed');
  return password;
}
