import type { Command } from 'commander';
import { caOption, CONNECTION_HELP, fingerprintOption, insecureOption, urlOption, withClient } from './connection.js';

/** Registers `dfos mv FROM TO`. */
export function registerMv(program: Command): void {
  program
    .command('mv')
    .description('rename or move a remote file or directory')
    .argument('<from>', 'remote path')
    .argument('<to>', 'new remote path')
    .addOption(urlOption())
    .addOption(caOption())
    .addOption(fingerprintOption())
    .addOption(insecureOption())
    .addHelpText('after', CONNECTION_HELP)
    .action(async (from: string, to: string, _opts: unknown, cmd: Command) => {
      await withClient(cmd, (client) => client.rename(from, to));
    });
}
