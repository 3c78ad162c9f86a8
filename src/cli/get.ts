import { stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Command } from 'commander';
import { caOption, CONNECTION_HELP, fingerprintOption, insecureOption, transferProgress, urlOption, withClient } from './connection.js';

/** The local path for `get REMOTE [LOCAL]`: LOCAL, LOCAL/ + the remote name if LOCAL is a directory, or the remote name. */
export async function localTargetFor(remote: string, local: string | undefined): Promise<string> {
  const name = posix.basename(remote);
  if (local === undefined || local === '') return name;
  if (local.endsWith('/')) return join(local, name);
  const st = await stat(local).catch(() => undefined);
  return st?.isDirectory() ? join(local, name) : local;
}

/** Registers `dfos get REMOTE [LOCAL]`. */
export function registerGet(program: Command): void {
  program
    .command('get')
    .description('download a remote file (written to a temporary file, renamed into place only when complete)')
    .argument('<remote>', 'remote file')
    .argument('[local]', 'local path or directory (default: the remote file name in the current directory)')
    .option('--resume', 'continue an interrupted download kept with --resume (.NAME.dfos-part next to the target)')
    .addOption(urlOption())
    .addOption(caOption())
    .addOption(fingerprintOption())
    .addOption(insecureOption())
    .addHelpText('after', CONNECTION_HELP)
    .action(async (remote: string, local: string | undefined, opts: { resume?: boolean }, cmd: Command) => {
      const target = await localTargetFor(remote, local);
      await withClient(cmd, async (client) => {
        const progress = await transferProgress(`get ${remote}`);
        try {
          await client.download(remote, target, { onProgress: progress.onProgress, resume: opts.resume === true });
        } finally {
          progress.stop();
        }
      });
    });
}
