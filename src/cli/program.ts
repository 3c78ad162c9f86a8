import { Command } from 'commander';
import { registerBans } from './bans.js';
import { registerQuota } from './quota.js';
import { registerGet } from './get.js';
import { registerLs } from './ls.js';
import { registerMkdir } from './mkdir.js';
import { registerMv } from './mv.js';
import { registerPut } from './put.js';
import { registerRm } from './rm.js';
import { registerServe } from './serve.js';
import { registerUsers } from './users.js';
import { registerView } from './view.js';
import { packageVersion } from './version.js';

/**
 * The commands of `dfos`. Each lives in its own file under src/cli/ and exports a
 * `register…(program)` function; a new command (put, get, ls, rm, view, mkdir, mv, …) is
 * one more file and one more entry here.
 */
export const COMMANDS: ReadonlyArray<(program: Command) => void> = [
  registerServe,
  registerUsers,
  registerBans,
  registerQuota,
  registerPut,
  registerGet,
  registerLs,
  registerView,
  registerRm,
  registerMkdir,
  registerMv,
];

/** Builds the commander program (without error handling; see main.ts). */
export function createProgram(): Command {
  const program = new Command('dfos')
    .description('DFOS: a multi-user FTP server with per-user jails, atomic uploads and graceful shutdown')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpCommand(true);
  for (const register of COMMANDS) register(program);
  return program;
}
