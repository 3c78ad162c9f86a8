import type { Command } from 'commander';
import { caOption, CONNECTION_HELP, fingerprintOption, insecureOption, urlOption, withClient } from './connection.js';

/** Registers `dfos rm PATH`. */
export function registerRm(program: Command): void {
  program
    .command('rm')
    .description('delete a remote file (with --dir: an empty directory)')
    .argument('<path>', 'remote path')
    .option('-d, --dir', 'remove an empty directory instead of a file')
    .addOption(urlOption())
    .addOption(caOption())
    .addOption(fingerprintOption())
    .addOption(insecureOption())
    .addHelpText('after', CONNECTION_HELP)
    .action(async (path: string, opts: { dir?: boolean }, cmd: Command) => {
      await withClient(cmd, (client) => (opts.dir ? client.removeDir(path) : client.delete(path)));
    });
}
