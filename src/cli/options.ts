import { Option, type Command } from 'commander';

/** The environment variable for a flag: `pasv-min` → `DFOS_PASV_MIN`. */
export function envVarFor(flag: string): string {
  return `DFOS_${flag.replace(/-/g, '_').toUpperCase()}`;
}

/** `--users FILE` (env DFOS_USERS, default ./users.json), shared by the commands that use users.json. */
export function usersFileOption(): Option {
  return new Option('--users <file>', 'users file').env('DFOS_USERS').default('./users.json');
}

/** `--state-dir DIR` (env DFOS_STATE_DIR, default ./state): where the server keeps `what`. */
export function stateDirOption(what: string): Option {
  return new Option('--state-dir <dir>', `the server's state directory (${what})`).env('DFOS_STATE_DIR').default('./state');
}

/**
 * How to name an option in a message: the flag if it came from the command line, the
 * environment variable if it came from there, otherwise the flag with its default.
 */
export function describeOptionSource(cmd: Command, key: string, flag: string, defaultValue?: unknown): string {
  const source = cmd.getOptionValueSource(key);
  if (source === 'env') return envVarFor(flag);
  if (source === 'cli' || defaultValue === undefined) return `--${flag}`;
  return `--${flag} (default ${String(defaultValue)})`;
}
