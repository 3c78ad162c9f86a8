import { CommanderError, type Command } from 'commander';
import { UsersFileError } from '../users/usersFileError.js';
import { CliError } from './errors.js';
import { createProgram } from './program.js';

/** Where the CLI writes its one-line errors (replaceable for in-process tests). */
export interface CliIo {
  stderr: (text: string) => void;
}

const defaultIo: CliIo = { stderr: (text) => void process.stderr.write(text) };

function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

function usageOf(cmd: Command): string {
  return `${commandPath(cmd)} ${cmd.usage()}`.trim();
}

/** Applies `fn` to a command and all its subcommands. */
function eachCommand(cmd: Command, fn: (c: Command) => void): void {
  fn(cmd);
  for (const sub of cmd.commands) eachCommand(sub, fn);
}

function oneLine(text: string): string {
  return text
    .replace(/^error:\s*/i, '')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join(' ');
}

/**
 * Runs the CLI with `argv` (as in process.argv) and returns the exit code: 0 on success
 * (also for --help and --version), 2 for a bad invocation, 1 for a failed operation.
 * Every error is exactly one line on stderr, starting with "dfos: ".
 */
export async function main(argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  const program = createProgram();
  // Which command reported a commander error, and its message (commander prints nothing itself).
  let failed: { cmd: Command; message: string } | undefined;
  let helpOnError: Command | undefined;
  eachCommand(program, (cmd) => {
    cmd.exitOverride();
    cmd.configureOutput({
      outputError: (str) => {
        failed = { cmd, message: str };
      },
      writeErr: () => {
        // Only used for help shown because of an error (a missing subcommand).
        helpOnError = cmd;
      },
    });
  });

  const fail = (message: string, code: number) => {
    io.stderr(`dfos: ${oneLine(message)}\n`);
    return code;
  };

  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return 0; // --help, --version
      if (err.code === 'commander.help' || (helpOnError && !failed)) {
        const cmd = helpOnError ?? program;
        const subs = cmd.commands.map((c) => c.name()).filter((n) => n !== 'help');
        return fail(`missing command (usage: ${usageOf(cmd)}; commands: ${subs.join(', ')}; see: ${commandPath(cmd)} --help)`, 2);
      }
      const cmd = failed?.cmd ?? program;
      const message = oneLine(failed?.message ?? err.message);
      return fail(`${message} (usage: ${usageOf(cmd)}; see: ${commandPath(cmd)} --help)`, 2);
    }
    if (err instanceof CliError) return fail(err.message, err.exitCode);
    if (err instanceof UsersFileError) return fail(err.message, 1);
    return fail(err instanceof Error ? err.message : String(err), 1);
  }
}
