import type { Command } from 'commander';
import { formatEffectiveConfig } from '../config/effectiveConfig.js';
import { envVarFor } from './options.js';
import { addServeOptions, SERVE_FLAGS } from './serve.js';
import { DEFAULT_CONFIG_FILE, resolveServeConfig, type ResolvedServeConfig } from './serveConfig.js';

/** Where a setting came from, as the comment of its line: `--port`, `DFOS_PORT`, `dfos.yaml line 3`, `default`. */
function origin(resolved: ResolvedServeConfig, flag: (typeof SERVE_FLAGS)[number]): string {
  switch (resolved.sources[flag.key]) {
    case 'flag':
      return `--${flag.flag}`;
    case 'env':
      return envVarFor(flag.flag);
    case 'file':
      return `${resolved.file?.path ?? 'file'} line ${resolved.file?.lines.get(flag.flag) ?? '?'}`;
    default:
      return resolved.config[flag.key] === undefined ? 'not set (default)' : 'default';
  }
}

/**
 * Registers `dfos config check [FILE]`: validates a config file as `dfos serve` would (with
 * the same flags and DFOS_* environment on top) and prints the effective configuration.
 */
export function registerConfig(program: Command): void {
  const config = program.command('config').description('check a config file (dfos.yaml)');
  const check = config
    .command('check')
    .description(
      'validate a config file like dfos serve would, and print the effective configuration as YAML: every key, ' +
        'where its value came from (flag, DFOS_* environment, the file, default), secrets masked',
    )
    .argument('[file]', 'the YAML config file', DEFAULT_CONFIG_FILE);
  addServeOptions(check);
  check.action(async (file: string, _opts: unknown, self: Command) => {
    const resolved = await resolveServeConfig(self, SERVE_FLAGS, { path: file, required: true, fix: 'name an existing file: dfos config check FILE' });
    const settings = SERVE_FLAGS.map((f) => ({ key: f.flag, value: resolved.config[f.key], from: origin(resolved, f) }));
    process.stdout.write(formatEffectiveConfig(settings, `${file}: valid. Effective configuration (flags > DFOS_* environment > file > defaults):`));
  });
}
