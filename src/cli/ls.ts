import type { Command } from 'commander';
import type { RemoteEntry } from '../client/index.js';
import { caOption, CONNECTION_HELP, fingerprintOption, insecureOption, urlOption, withClient } from './connection.js';

const TYPE_LETTER: Record<RemoteEntry['type'], string> = { file: '-', directory: 'd', symlink: 'l', unknown: '?' };

function when(date: Date): string {
  return Number.isNaN(date.getTime()) ? '????-??-?? ??:??' : date.toISOString().slice(0, 16).replace('T', ' ');
}

/** One `ls` line: type, size, modification time (UTC), name (directories end in "/"). */
export function formatEntry(e: RemoteEntry, sizeWidth: number): string {
  const name = e.type === 'directory' ? `${e.name}/` : e.name;
  return `${TYPE_LETTER[e.type]} ${String(e.size).padStart(sizeWidth)}  ${when(e.modifiedAt)}  ${name}`;
}

/** Registers `dfos ls [DIR]`. */
export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list a remote directory')
    .argument('[dir]', 'remote directory (default: your root)')
    .option('--json', 'print a JSON array of {name, type, size, modifiedAt}')
    .addOption(urlOption())
    .addOption(caOption())
    .addOption(fingerprintOption())
    .addOption(insecureOption())
    .addHelpText('after', CONNECTION_HELP)
    .action(async (dir: string | undefined, opts: { json?: boolean }, cmd: Command) => {
      const entries = await withClient(cmd, (client) => client.list(dir));
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      if (opts.json) {
        process.stdout.write(JSON.stringify(entries, null, 2) + '\n');
        return;
      }
      const width = Math.max(1, ...entries.map((e) => String(e.size).length));
      for (const e of entries) process.stdout.write(formatEntry(e, width) + '\n');
    });
}
