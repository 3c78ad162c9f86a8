import { Option, type Command } from 'commander';
import { ZodError } from 'zod';
import { ConfigFileError, readConfigFile, type ConfigFile } from '../config/configFile.js';
import { maskSecret } from '../config/effectiveConfig.js';
import { parseServerConfig, serverConfigSchema, type ServerConfig, type ServerConfigInput } from '../config/serverConfig.js';
import { usageError } from './errors.js';
import { envVarFor } from './options.js';

/** A server setting that has a flag (every key of ServerConfig but `console`). */
export type ServeKey = Exclude<keyof ServerConfig, 'console'>;

/** One `dfos serve` flag: also DFOS_<FLAG> in the environment and `<flag>:` in dfos.yaml. */
export interface ServeFlag {
  key: ServeKey;
  flag: string;
  arg: string;
  help: string;
  /** How the raw string must look before the schema sees it (the schema's coercion is lenient). */
  kind: 'string' | 'integer' | 'seconds';
}

/**
 * Where the server's settings come from, in order of precedence: flags, then DFOS_*
 * environment variables, then the config file, then the embedded defaults. One schema
 * validates the result whatever the source, and a mistake is named as the operator wrote
 * it (`--port`, `DFOS_PORT`, or `port in dfos.yaml line 3`).
 */

/** Where one setting's value came from. */
export type ConfigSource = 'flag' | 'env' | 'file' | 'default';

/** The validated settings, with where each came from. */
export interface ResolvedServeConfig {
  config: ServerConfig;
  sources: Record<ServeKey, ConfigSource>;
  /** The config file that was read, if any. */
  file: ConfigFile | undefined;
}

/** Which config file to read: its path, whether it must exist, and how the operator named it. */
export interface ConfigFileChoice {
  path: string;
  required: boolean;
  /** What a "not found" message tells the operator to do (`check --config`, …). */
  fix: string;
}

/** The file read when neither --config nor DFOS_CONFIG is given (only if it exists). */
export const DEFAULT_CONFIG_FILE = 'dfos.yaml';

/** `--config FILE` (env DFOS_CONFIG). */
export function configFileOption(): Option {
  return new Option('--config <file>', `YAML config file (default: ./${DEFAULT_CONFIG_FILE} when present)`).env('DFOS_CONFIG');
}

/** The config file `dfos serve` reads: --config / DFOS_CONFIG (must exist), else ./dfos.yaml if present. */
export function serveConfigFile(cmd: Command): ConfigFileChoice {
  const given = cmd.opts<{ config?: string }>().config;
  if (given !== undefined) return { path: given, required: true, fix: `check ${cmd.getOptionValueSource('config') === 'env' ? 'DFOS_CONFIG' : '--config'}` };
  return { path: DEFAULT_CONFIG_FILE, required: false, fix: '' };
}

/** The schema's defaults (what a setting is when nothing sets it). */
export function schemaDefaults(): Partial<Record<ServeKey, unknown>> {
  try {
    return serverConfigSchema.parse({});
  } catch {
    return {};
  }
}

/** How a raw string must look before the schema sees it (the schema's coercion is lenient). */
const STRICT_FORMS: Record<Exclude<ServeFlag['kind'], 'string'>, RegExp> = {
  integer: /^[0-9]+$/,
  seconds: /^[0-9]+(\.[0-9]+)?$/,
};

/** A file value as the flag would take it: a YAML list is the flag's comma list. */
function asFlagText(value: unknown): string {
  return Array.isArray(value) ? value.map(String).join(',') : String(value);
}

/** Reads the chosen file (keys: the flag names); a missing optional file is no file. */
async function loadFile(choice: ConfigFileChoice, keys: readonly string[]): Promise<ConfigFile | undefined> {
  try {
    return await readConfigFile(choice.path, keys);
  } catch (err) {
    if (!(err instanceof ConfigFileError)) throw err;
    if (err.missing && !choice.required) return undefined;
    throw usageError(err.missing ? `${err.message}; ${choice.fix}` : err.message);
  }
}

/**
 * Combines flags, environment, the config file and the defaults into a validated
 * ServerConfig, or throws a usage error naming the setting as the operator gave it and
 * what it accepts. Called again on SIGHUP: the flags and environment are the same, the
 * file is read anew.
 */
export async function resolveServeConfig(cmd: Command, flags: readonly ServeFlag[], choice: ConfigFileChoice | undefined): Promise<ResolvedServeConfig> {
  const file = choice ? await loadFile(choice, flags.map((f) => f.flag)) : undefined;
  const opts = cmd.opts<Record<string, string | undefined>>();
  const input: Record<string, unknown> = {};
  const raw: Partial<Record<ServeKey, string>> = {};
  const sources = {} as Record<ServeKey, ConfigSource>;
  for (const f of flags) {
    const given = cmd.getOptionValueSource(f.key);
    let text: string | undefined;
    sources[f.key] = 'default';
    if (opts[f.key] !== undefined && (given === 'cli' || given === 'env')) {
      text = opts[f.key];
      sources[f.key] = given === 'cli' ? 'flag' : 'env';
    } else if (file?.values.has(f.flag)) {
      text = asFlagText(file.values.get(f.flag));
      sources[f.key] = 'file';
    }
    if (text === undefined) continue;
    raw[f.key] = text;
    // " 12", "0x10", "1e3" and "" coerce to numbers; refuse them with the schema's own message.
    input[f.key] = f.kind === 'string' || STRICT_FORMS[f.kind].test(text) ? text : 'not a number';
  }
  try {
    return { config: parseServerConfig(input as ServerConfigInput), sources, file };
  } catch (err) {
    if (!(err instanceof ZodError)) throw err;
    throw usageError(describeIssue(err, flags, { raw, sources, file }));
  }
}

/** How a setting is named in a message: as the operator gave it (flag, variable, file line), or the flag with its default. */
function nameOf(f: ServeFlag, source: ConfigSource, file: ConfigFile | undefined, defaultValue: unknown): string {
  if (source === 'env') return envVarFor(f.flag);
  if (source === 'file' && file) return `${f.flag} in ${file.path} line ${file.lines.get(f.flag) ?? '?'}`;
  if (source === 'default' && defaultValue !== undefined) return `--${f.flag} (default ${String(defaultValue)})`;
  return `--${f.flag}`;
}

function describeIssue(
  err: ZodError,
  flags: readonly ServeFlag[],
  given: { raw: Partial<Record<ServeKey, string>>; sources: Record<ServeKey, ConfigSource>; file: ConfigFile | undefined },
): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid serve configuration';
  const dflt = schemaDefaults();
  const byFlag = new Map(flags.map((f) => [f.flag, f]));
  const primary = flags.find((f) => f.key === issue.path[0]);
  const name = (f: ServeFlag) => nameOf(f, given.sources[f.key], given.file, f === primary ? undefined : dflt[f.key]);
  // Messages start with the setting's name ("port must be …"); name it as the operator gave it (a URL
  // scheme such as redis:// in an example is not a setting).
  const words = [...byFlag.keys()].sort((a, b) => b.length - a.length).join('|');
  let text = issue.message.replace(new RegExp(`(?<![\\w-])(${words})(?![\\w:-])`, 'g'), (w) => name(byFlag.get(w)!));
  if (primary && !text.startsWith(name(primary))) text = `${name(primary)}: ${text}`;
  const got = primary ? given.raw[primary.key] : undefined;
  // A password in a URL (--redis, --s3-endpoint) is not echoed back.
  return got === undefined || !primary ? text : `${text} (got ${JSON.stringify(maskSecret(primary.flag, got))})`;
}
