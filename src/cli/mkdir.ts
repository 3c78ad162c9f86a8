import type { Command } from 'commander';
import { caOption, CONNECTION_HELP, fingerprintOption, insecureOption, urlOption, withClient } from './connection.js';

/** Registers `dfos mkdir PATH`. */
export function registerMkdir(program: Command): void {
  program
    .command('mkdir')
    .description('create a remote directory (its parent must exist)')
    .argument('<path>', 'remote path')
    .addOption(urlOption())
    .addOption(caOption())
    .addOption(fingerprintOption())
    .addOption(insecureOption())
    .addHelpText('after', CONNECTION_HELP)
    .action(async (path: string, _opts: unknown, cmd: Command) => {
      await withClient(cmd, (client) => client.mkdir(path));
    });
}
