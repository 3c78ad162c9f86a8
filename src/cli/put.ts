import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { caOption, CONNECTION_HELP, fingerprintOption, insecureOption, transferProgress, urlOption, withClient } from './connection.js';
import { operationError } from './errors.js';

/** The remote path for `put LOCAL [REMOTE]`: REMOTE, REMOTE/ + the local name, or the local name. */
export function remoteTargetFor(local: string, remote: string | undefined): string {
  if (remote === undefined || remote === '') return basename(local);
  return remote.endsWith('/') ? remote + basename(local) : remote;
}

/** Registers `dfos put LOCAL [REMOTE]`. */
export function registerPut(program: Command): void {
  program
    .command('put')
    .description('upload a local file (stored atomically on the server)')
    .argument('<local>', 'local file')
    .argument('[remote]', 'remote path (default: the local file name; a path ending in "/" gets the name appended)')
    .option('--resume', 'continue an interrupted upload: send only what the remote file lacks')
    .addOption(urlOption())
    .addOption(caOption())
    .addOption(fingerprintOption())
    .addOption(insecureOption())
    .addHelpText('after', CONNECTION_HELP)
    .action(async (local: string, remote: string | undefined, opts: { resume?: boolean }, cmd: Command) => {
      // Checked before connecting, so a typo does not cost a password prompt.
      const st = await stat(local).catch((err: NodeJS.ErrnoException) => {
        throw operationError(`put ${local}: cannot read the local file: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
      });
      if (!st.isFile()) throw operationError(`put ${local}: not a regular file`);
      const target = remoteTargetFor(local, remote);
      await withClient(cmd, async (client) => {
        const progress = await transferProgress(`put ${target}`);
        try {
          await client.upload(local, target, { onProgress: progress.onProgress, resume: opts.resume === true });
        } finally {
          progress.stop();
        }
      });
    });
}
