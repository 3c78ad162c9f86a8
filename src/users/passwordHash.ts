import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { concurrencyLimit } from '../util/concurrencyLimit.js';

/**
 * Password hashing for users.json.
 *
 * A stored password is a self-describing PHC-style string:
 *
 *     $scrypt$ln=14,r=8,p=1$<salt, base64 without padding>$<key, base64 without padding>
 *
 * `ln` is log2 of scrypt's cost N, `r` the block size and `p` the parallelism. Because the
 * parameters travel with the hash, they can be raised later without invalidating old entries.
 */

/** scrypt cost parameters as stored in a hash string. */
export interface ScryptCost {
  /** log2(N), the CPU/memory cost. */
  ln: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
}

/** A parsed hash string: its parameters, salt and derived key. */
export interface ParsedPasswordHash extends ScryptCost {
  salt: Buffer;
  hash: Buffer;
}

/** Parameters used by {@link hashPassword} unless told otherwise (16 MiB, ~50-100 ms). */
export const DEFAULT_SCRYPT_COST: Readonly<ScryptCost> = Object.freeze({ ln: 14, r: 8, p: 1 });

/** Accepted ranges for stored parameters; anything outside is treated as malformed. */
export const SCRYPT_LIMITS = Object.freeze({
  ln: { min: 10, max: 20 },
  r: { min: 1, max: 32 },
  p: { min: 1, max: 16 },
  /**
   * Upper bound on N·r·p (64× the default work, ≤ 1 GiB of memory). Each parameter may be
   * within its range while the product is still far too expensive (ln=20, r=32, p=16 would
   * take minutes and 4 GiB), so a hostile or mistyped file is refused instead.
   */
  maxWork: 2 ** 23,
});

const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Accepted sizes when reading a hash written elsewhere. */
const SALT_RANGE = { min: 8, max: 64 };
const KEY_RANGE = { min: 16, max: 64 };

const HASH_RE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function inRange(v: number, range: { min: number; max: number }): boolean {
  return Number.isInteger(v) && v >= range.min && v <= range.max;
}

function costIsAcceptable(cost: ScryptCost): boolean {
  return (
    inRange(cost.ln, SCRYPT_LIMITS.ln) &&
    inRange(cost.r, SCRYPT_LIMITS.r) &&
    inRange(cost.p, SCRYPT_LIMITS.p) &&
    2 ** cost.ln * cost.r * cost.p <= SCRYPT_LIMITS.maxWork
  );
}

function b64encode(buf: Buffer): string {
  return buf.toString('base64').replace(/=+$/, '');
}

/** Decodes unpadded base64, refusing anything that does not round-trip exactly. */
function b64decode(s: string): Buffer | null {
  const buf = Buffer.from(s, 'base64');
  return b64encode(buf) === s ? buf : null;
}

/** Options for node's scrypt, with maxmem sized for the parameters (node's default is 32 MiB). */
function scryptOptions(cost: ScryptCost): ScryptOptions {
  const N = 2 ** cost.ln;
  // OpenSSL needs 128·r·(N+2) bytes for V plus 128·r·p for B; add slack.
  const maxmem = 128 * cost.r * (N + 2) + 128 * cost.r * cost.p + 1024 * 1024;
  return { N, r: cost.r, p: cost.p, maxmem };
}

/**
 * scrypt runs at once, process-wide. Each takes 16 MiB (default cost) on libuv's thread
 * pool, which DFOS enlarges for file I/O (see src/dfos.cts): 4 bounds what a login storm
 * costs to 64 MiB and leaves the other pool threads to file I/O.
 */
const SCRYPT_CONCURRENCY = 4;
const scryptSlot = concurrencyLimit(SCRYPT_CONCURRENCY);

function scrypt(password: string, salt: Buffer, keylen: number, cost: ScryptCost): Promise<Buffer> {
  return scryptSlot(
    () =>
      new Promise<Buffer>((resolve, reject) => {
        scryptCb(password.normalize('NFC'), salt, keylen, scryptOptions(cost), (err, key) => {
          if (err) reject(err);
          else resolve(key);
        });
      }),
  );
}

/**
 * Parses a stored hash string. Returns null when it is not a DFOS scrypt hash or when its
 * parameters are outside {@link SCRYPT_LIMITS} (so verification can never be made to burn
 * minutes of CPU or gigabytes of memory).
 */
export function parsePasswordHash(encoded: string): ParsedPasswordHash | null {
  if (typeof encoded !== 'string' || encoded.length > 512) return null;
  const m = HASH_RE.exec(encoded);
  if (!m) return null;
  const [, lnS, rS, pS, saltS, hashS] = m as unknown as [string, string, string, string, string, string];
  // No leading zeros: one spelling per value keeps the format canonical.
  if ([lnS, rS, pS].some((d) => d.length > 1 && d.startsWith('0'))) return null;
  const cost = { ln: Number(lnS), r: Number(rS), p: Number(pS) };
  if (!costIsAcceptable(cost)) return null;
  const salt = b64decode(saltS);
  const hash = b64decode(hashS);
  if (!salt || !hash || !inRange(salt.length, SALT_RANGE) || !inRange(hash.length, KEY_RANGE)) return null;
  return { ...cost, salt, hash };
}

/** True when `encoded` is a well-formed DFOS password hash (see {@link parsePasswordHash}). */
export function isPasswordHash(encoded: string): boolean {
  return parsePasswordHash(encoded) !== null;
}

/**
 * Hashes a password with scrypt, a fresh 16-byte random salt and a 32-byte key.
 * `cost` defaults to {@link DEFAULT_SCRYPT_COST}; it must be within {@link SCRYPT_LIMITS}.
 * The password is NFC-normalised first, so the same text typed on different systems matches.
 */
export async function hashPassword(password: string, cost: ScryptCost = DEFAULT_SCRYPT_COST): Promise<string> {
  if (typeof password !== 'string') throw new TypeError('password must be a string');
  if (!costIsAcceptable(cost)) {
    throw new RangeError(`scrypt parameters out of range: ln=${cost.ln},r=${cost.r},p=${cost.p}`);
  }
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, KEY_BYTES, cost);
  return `$scrypt$ln=${cost.ln},r=${cost.r},p=${cost.p}$${b64encode(salt)}$${b64encode(key)}`;
}

/**
 * Checks a password against a stored hash, using the parameters, salt and key length stored
 * in it, and comparing in constant time. A malformed or out-of-bounds hash never matches.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parsed = parsePasswordHash(encoded);
  if (!parsed || typeof password !== 'string') return false;
  const key = await scrypt(password, parsed.salt, parsed.hash.length, parsed);
  return timingSafeEqual(key, parsed.hash);
}
