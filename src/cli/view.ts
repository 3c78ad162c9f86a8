import type { Command } from 'commander';
import { renderHexDump } from '../preview/previewFormat.js';
import { caOption, CONNECTION_HELP, fingerprintOption, insecureOption, urlOption, withClient } from './connection.js';

/** Writes to stdout and waits until it is handed off; a reader that went away (EPIPE, e.g. `| head`) is not an error. */
function writeStdout(data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? resolve() : reject(err));
    process.stdout.once('error', onError);
    process.stdout.write(data, (err) => {
      process.stdout.off('error', onError);
      if (err && (err as NodeJS.ErrnoException).code !== 'EPIPE') reject(err);
      else resolve();
    });
  });
}

/** Registers `dfos view PATH`. */
export function registerView(program: Command): void {
  program
    .command('view')
    .description('print the first 1024 bytes of a remote file, exactly as stored (binary-safe)')
    .argument('<path>', 'remote file')
    .option('--hex', 'print a hex dump (hexdump -C style) instead of the raw bytes')
    .addOption(urlOption())
    .addOption(caOption())
    .addOption(fingerprintOption())
    .addOption(insecureOption())
    .addHelpText('after', CONNECTION_HELP)
    .action(async (path: string, opts: { hex?: boolean }, cmd: Command) => {
      const preview = await withClient(cmd, (client) => client.preview(path));
      if (opts.hex) {
        const lines = renderHexDump(preview.bytes);
        await writeStdout(lines.map((l) => l + '\n').join(''));
      } else {
        await writeStdout(preview.bytes);
      }
      if (preview.truncated && process.stderr.isTTY) {
        process.stderr.write(`\n(first ${preview.bytes.length} of ${preview.fileSize} bytes)\n`);
      }
    });
}
