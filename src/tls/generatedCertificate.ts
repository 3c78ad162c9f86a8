import { chmod, mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { withFileLock, writeFileAtomic } from '../users/lockedFileWrite.js';
import { TlsCredentialsError } from './TlsCredentialsError.js';
import { readKeyPair, type KeyPair, type KeyPairFiles } from './pemKeyPair.js';

/**
 * The self-signed certificate the server makes for itself when no --tls-cert/--tls-key is
 * given: `<state-dir>/tls/cert.pem` (0644) and `<state-dir>/tls/key.pem` (0600), created on
 * the first start and reused afterwards, so clients that pinned it keep trusting it.
 */

/** The generated pair's files under a state directory. */
export function generatedPairFiles(stateDir: string): KeyPairFiles {
  const dir = join(stateDir, 'tls');
  const fix = `move both files in ${dir} aside to have a new certificate generated`;
  return { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), certFix: fix, keyFix: fix };
}

/** How {@link loadGeneratedPair} got its pair. */
export interface GeneratedPair {
  pair: KeyPair;
  /** Made now (first start, or the previous one was missing its certificate or had expired). */
  generated: boolean;
  /** Why a new one was made, when one was: `first start`, `expired`, `certificate missing`. */
  reason?: string;
  /** Fingerprint of the expired certificate that was replaced. */
  replaced?: string;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
}

/**
 * Reuses `<stateDir>/tls/{cert,key}.pem`, or generates them (valid for `names`): when neither
 * exists, when only the key does (a start that stopped half-way: no client can have seen
 * that certificate), or when the certificate has expired. Creates the state directory
 * (0700) if needed. A key without its certificate is never made up; other problems
 * (unreadable, not PEM, mismatch) throw {@link TlsCredentialsError}. Generation holds a
 * lock, so two servers sharing a state directory end up with the same pair.
 */
export async function loadGeneratedPair(
  stateDir: string,
  names: readonly string[],
  now: () => Date = () => new Date(),
): Promise<GeneratedPair> {
  const files = generatedPairFiles(stateDir);
  const dir = join(stateDir, 'tls');
  const fast = await tryExisting(files, now);
  if (fast) return fast;
  try {
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new TlsCredentialsError(
      `TLS state directory ${dir}: cannot create it (${(err as NodeJS.ErrnoException).code ?? String(err)}); check --state-dir`,
      'write-failed',
      dir,
    );
  }
  try {
    return await withFileLock(files.certFile, async () => {
      // Another server may have made it while this one waited for the lock.
      const again = await tryExisting(files, now);
      if (again) return again;
      const hadKey = await exists(files.keyFile);
      const old = (await exists(files.certFile)) ? await readKeyPair(files).catch(() => undefined) : undefined;
      const { generateSelfSignedCertificate } = await import('./selfSignedCertificate.js');
      const pem = await generateSelfSignedCertificate(names, now());
      await writePem(files.keyFile, pem.key, 0o600);
      await writePem(files.certFile, pem.cert, 0o644);
      const reason = old ? 'expired' : hadKey ? 'certificate missing' : 'first start';
      return { pair: await readKeyPair(files), generated: true, reason, ...(old ? { replaced: old.fingerprint } : {}) };
    });
  } catch (err) {
    if (err instanceof TlsCredentialsError) throw err;
    throw new TlsCredentialsError(
      `TLS state directory ${dir}: cannot write the generated certificate (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check --state-dir`,
      'write-failed',
      dir,
    );
  }
}

/** The existing pair if it can be reused as it is; undefined when one must be generated. */
async function tryExisting(files: KeyPairFiles, now: () => Date): Promise<GeneratedPair | undefined> {
  if (!(await exists(files.certFile))) {
    // A key alone is what a start that stopped half-way leaves (the key is written first).
    return undefined;
  }
  const pair = await readKeyPair(files); // a certificate without its key: "no such file"
  if (new Date(pair.leaf.validTo).getTime() <= now().getTime()) return undefined;
  return { pair, generated: false };
}

async function writePem(file: string, text: string, mode: number): Promise<void> {
  // writeFileAtomic keeps an existing file's mode: never let a new key inherit a looser one.
  await chmod(file, mode).catch(() => undefined);
  await writeFileAtomic(file, text);
  await chmod(file, mode);
}
