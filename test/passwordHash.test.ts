import test from 'ava';
import {
  DEFAULT_SCRYPT_COST,
  hashPassword,
  isPasswordHash,
  parsePasswordHash,
  verifyPassword,
} from '../src/users/passwordHash.js';

const FAST = { ln: 10, r: 8, p: 1 };

test('hash round trip with the default parameters', async (t) => {
  const encoded = await hashPassword('correct horse battery staple');
  t.regex(encoded, /^\$scrypt\$ln=14,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
  t.true(await verifyPassword('correct horse battery staple', encoded));
  const parsed = parsePasswordHash(encoded);
  t.truthy(parsed);
  t.is(parsed!.ln, DEFAULT_SCRYPT_COST.ln);
  t.is(parsed!.r, 8);
  t.is(parsed!.p, 1);
  t.is(parsed!.salt.length, 16);
  t.is(parsed!.hash.length, 32);
});

test('wrong password does not verify', async (t) => {
  const encoded = await hashPassword('secret', FAST);
  t.false(await verifyPassword('Secret', encoded));
  t.false(await verifyPassword('', encoded));
  t.false(await verifyPassword('secret ', encoded));
  t.true(await verifyPassword('secret', encoded));
});

test('verification honours the parameters stored in the string', async (t) => {
  const encoded = await hashPassword('pw', { ln: 11, r: 4, p: 2 });
  t.true(encoded.startsWith('$scrypt$ln=11,r=4,p=2$'));
  t.true(await verifyPassword('pw', encoded));
  // The same salt and key under other parameters must not verify.
  t.false(await verifyPassword('pw', encoded.replace('ln=11,r=4,p=2', 'ln=11,r=4,p=1')));
});

test('the same password gets a different salt and hash each time', async (t) => {
  const a = await hashPassword('same', FAST);
  const b = await hashPassword('same', FAST);
  t.not(a, b);
  t.notDeepEqual(parsePasswordHash(a)!.salt, parsePasswordHash(b)!.salt);
  t.true(await verifyPassword('same', a));
  t.true(await verifyPassword('same', b));
});

test('unicode passwords are normalised (NFC)', async (t) => {
  const encoded = await hashPassword('caf\u00e9', FAST);
  t.true(await verifyPassword('cafe\u0301', encoded));
});

test('malformed strings are rejected and never verify', async (t) => {
  const good = await hashPassword('pw', FAST);
  const [, , params, salt, hash] = good.split('$');
  const bad = [
    '',
    'pw',
    'demo',
    '$2b$10$abcdefghijklmnopqrstuu5K2QB8QlOLrW0Xm8Sc8Y7tyEJ4P8W6a',
    `$scrypt$${params}$${salt}`,
    `$scrypt$${params}$${salt}$${hash}$`,
    `$scrypt$${params}$${salt}$${hash}==`,
    `$scrypt$${params}$${salt}$${hash!.slice(0, -1)}!`,
    `$argon2id$${params}$${salt}$${hash}`,
    `$scrypt$ln=10,r=8$${salt}$${hash}`,
    `$scrypt$r=8,ln=10,p=1$${salt}$${hash}`,
    `$scrypt$ln=010,r=8,p=1$${salt}$${hash}`,
    `$scrypt$ln=10,r=08,p=1$${salt}$${hash}`,
    `$scrypt$ln=10,r=8,p=1$$${hash}`,
    `$scrypt$ln=10,r=8,p=1$AAAA$${hash}`, // salt too short
    `$scrypt$ln=10,r=8,p=1$${salt}$AAAA`, // key too short
    ` ${good}`,
    `${good}\n`,
  ];
  for (const s of bad) {
    t.is(parsePasswordHash(s), null, s);
    t.false(isPasswordHash(s), s);
    t.false(await verifyPassword('pw', s), s);
  }
  t.true(isPasswordHash(good));
});

test('parameters are bounded so a hostile file cannot burn CPU or memory', async (t) => {
  const good = await hashPassword('pw', FAST);
  const [, , , salt, hash] = good.split('$');
  const withParams = (p: string) => `$scrypt$${p}$${salt}$${hash}`;
  for (const p of ['ln=9,r=8,p=1', 'ln=21,r=8,p=1', 'ln=99,r=8,p=1', 'ln=10,r=0,p=1', 'ln=10,r=33,p=1', 'ln=10,r=8,p=0', 'ln=10,r=8,p=17']) {
    t.is(parsePasswordHash(withParams(p)), null, p);
  }
  // Each within range but together far too expensive (4 GiB, minutes of CPU).
  t.is(parsePasswordHash(withParams('ln=20,r=32,p=16')), null);
  t.is(parsePasswordHash(withParams('ln=20,r=16,p=1')), null);
  // The edges that are acceptable.
  for (const p of ['ln=10,r=1,p=1', 'ln=20,r=8,p=1', 'ln=10,r=32,p=16', 'ln=14,r=8,p=16']) {
    t.truthy(parsePasswordHash(withParams(p)), p);
  }
  await t.throwsAsync(hashPassword('pw', { ln: 25, r: 8, p: 1 }), { instanceOf: RangeError });
  await t.throwsAsync(hashPassword('pw', { ln: 20, r: 32, p: 16 }), { instanceOf: RangeError });
});
