import { readFile, stat } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node } from 'yaml';
import { nearestKey } from './nearestKey.js';

/**
 * The configuration file (`dfos.yaml`): one YAML mapping whose keys are the `dfos serve`
 * flags without their dashes in front (`max-sessions: 500`, `tls: required`,
 * `ban-allow: [10.0.0.0/8]`). Values are a scalar, or a list where the flag takes a comma
 * list; an empty value (`pasv-address:`) leaves the key unset. This module only reads the
 * file and checks its shape and keys; the values are validated by the server
 * configuration's schema, like flags.
 */

/** A config file is a few dozen lines; anything this big is a mistake (and is not read). */
const MAX_BYTES = 1024 * 1024;

/** A configuration file that cannot be used: one line naming the file, where, and what to do. */
export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
  constructor(
    message: string,
    /** The file does not exist (the caller knows whether it was asked for). */
    readonly missing = false,
  ) {
    super(message);
  }
}

/** The settings of a configuration file. */
export interface ConfigFile {
  /** The path as given (messages name it so). */
  readonly path: string;
  /** Each key's value as YAML gave it (string, number, boolean, or a list of those); unset keys absent. */
  readonly values: ReadonlyMap<string, unknown>;
  /** The line (from 1) of each key, for messages. */
  readonly lines: ReadonlyMap<string, number>;
}

/** A scalar, a list of scalars, or null; anything else (a mapping, a nested list) is refused. */
function plainValue(node: unknown): { ok: true; value: unknown } | { ok: false } {
  if (node === null || node === undefined) return { ok: true, value: null };
  if (isScalar(node)) return { ok: true, value: node.value };
  if (isSeq(node)) {
    const items: unknown[] = [];
    for (const item of node.items) {
      if (!isScalar(item)) return { ok: false };
      items.push(item.value);
    }
    return { ok: true, value: items };
  }
  return { ok: false };
}

/**
 * Reads and checks a configuration file against the valid keys (the flag names). Throws a
 * ConfigFileError: missing or unreadable file, YAML syntax (with line and column), not a
 * mapping, an unknown key (with the key it was probably meant to be), or a value that is a
 * mapping.
 */
export async function readConfigFile(path: string, keys: readonly string[]): Promise<ConfigFile> {
  let text: string;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new ConfigFileError(`config file ${path}: not a file; give a YAML file such as dfos.yaml`);
    if (info.size > MAX_BYTES) throw new ConfigFileError(`config file ${path}: larger than 1 MiB, not read; a configuration file is a few lines of YAML`);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof ConfigFileError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigFileError(`config file ${path}: not found`, true);
    throw new ConfigFileError(`config file ${path}: cannot be read (${code ?? (err as Error).message}); check its permissions`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true });
  const syntax = doc.errors[0];
  if (syntax) {
    const at = syntax.linePos?.[0];
    const where = at ? ` line ${at.line}, column ${at.col}` : '';
    const what = syntax.message.split(/ at line \d+/)[0]!.split('\n')[0]!;
    throw new ConfigFileError(`config file ${path}${where}: ${what}; correct the YAML there`);
  }
  const values = new Map<string, unknown>();
  const lines = new Map<string, number>();
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) return { path, values, lines };
  if (!isMap(root)) {
    throw new ConfigFileError(`config file ${path}: must be a mapping of settings, one "key: value" per line (such as "port: 2121")`);
  }
  const known = new Set(keys);
  for (const pair of root.items) {
    const keyNode = pair.key as Node | null;
    const key = String(isScalar(keyNode) ? keyNode.value : keyNode);
    const line = lineCounter.linePos(keyNode?.range?.[0] ?? 0).line;
    if (!known.has(key)) {
      const hint = nearestKey(key, keys);
      const fix =
        hint?.kind === 'spelling' ? `write it as \`${hint.key}\` (keys are spelled like the flags)`
        : hint?.kind === 'typo' ? `did you mean \`${hint.key}\`?`
        : 'keys are the serve flags without "--" (see dfos.example.yaml or dfos serve --help)';
      throw new ConfigFileError(`unknown key \`${key}\` in ${path} line ${line}; ${fix}`);
    }
    const value = plainValue(pair.value);
    if (!value.ok) throw new ConfigFileError(`config file ${path} line ${line}: ${key} must be a single value or a list, not a mapping or nested list`);
    lines.set(key, line);
    if (value.value !== null) values.set(key, value.value);
  }
  return { path, values, lines };
}
