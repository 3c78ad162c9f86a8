import { Option } from 'commander';

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
