import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  AuthError,
  ConnectionError,
  DfosClient,
  DfosError,
  ProtocolError,
  TlsVerificationError,
  type DfosConnectOptions,
} from '../src/client/index.js';
import { collector, runCli, sameBytes, tempDir } from './helpers/clientFixtures.js';
import { startVsftpd, type Peer } from './helpers/peerServers.js';
import { makeCertificate, type TestCertificate } from './helpers/tlsFixtures.js';

/**
 * FTPS from the client side (DfosClient and the `dfos` CLI) against vsftpd with TLS required
 * for logins and data (force_local_*_ssl, require_ssl_reuse): one instance with explicit TLS
 * (AUTH TLS, `ftpes://`), one with implicit TLS (`ftps://`), both with a self-signed
 * certificate made by openssl for this run. Loopback only; both stopped by PID at the end.
 * The system user is `dfostls` (not client.peers.test.ts's `dfospeer`, whose password that
 * file sets while this one runs).
 */

const CLI = fileURLToPath(new URL('../dist/dfos.cjs', import.meta.url));
const TLS_USER = 'dfostls';
/** A valid fingerprint that is not the server's. */
const WRONG_FINGERPRINT = Array.from({ length: 32 }, () => 'AB').join(':');

interface Fixture {
  cert: TestCertificate;
  /** A certificate the servers do not use (for a CA that does not match). */
  other: TestCertificate;
  explicit: Peer;
  implicit: Peer;
}

let fixture: Promise<Fixture> | undefined;
let certDir: string | undefined;
const stops: Array<() => Promise<void>> = [];

function servers(): Promise<Fixture> {
  fixture ??= (async () => {
    certDir = await mkdtemp(join(tmpdir(), 'dfos-tls-certs-'));
    const cert = await makeCertificate(certDir);
    const other = await makeCertificate(certDir, { name: 'other.example', subjectAltName: 'DNS:other.example' });
    const explicit = await startVsftpd({ user: TLS_USER, tls: { cert: cert.cert, key: cert.key } });
    stops.push(() => explicit.stop());
    const implicit = await startVsftpd({ user: TLS_USER, tls: { cert: cert.cert, key: cert.key, implicit: true } });
    stops.push(() => implicit.stop());
    return { cert, other, explicit, implicit };
  })();
  return fixture;
}

test.after.always(async () => {
  for (const stop of stops) await stop();
  if (certDir) await rm(certDir, { recursive: true, force: true });
});

function optionsFor(srv: Peer, extra: Partial<DfosConnectOptions>): DfosConnectOptions {
  return { host: srv.host, port: srv.port, user: srv.user, password: srv.password, timeoutMs: 10_000, ...extra };
}

async function connectTo(t: ExecutionContext, srv: Peer, extra: Partial<DfosConnectOptions>): Promise<DfosClient> {
  const client = await DfosClient.connect(optionsFor(srv, extra));
  t.teardown(() => client.close());
  return client;
}

/** The error a promise rejects with, asserted to be exactly `Class`. */
async function rejectsWith<E extends DfosError>(t: ExecutionContext, promise: Promise<unknown>, Class: abstract new (...args: never[]) => E): Promise<E> {
  const err = await t.throwsAsync(promise);
  t.true(err instanceof Class, `expected ${Class.name}, got ${String(err)}`);
  t.is(err?.name, Class.name);
  return err as E;
}

/** Upload (a file and a Buffer), list and download (to a file and a stream), byte-exact, in a folder of its own. */
async function roundTrip(t: ExecutionContext, client: DfosClient, srv: Peer): Promise<void> {
  const dir = await tempDir(t, 'dfos-tls-client-');
  const top = `tls-${randomBytes(3).toString('hex')}`;
  await client.mkdir(top);
  const content = randomBytes(3 * 1024 * 1024 + 17);
  await writeFile(join(dir, 'big.bin'), content);
  t.deepEqual(await client.upload(join(dir, 'big.bin'), `${top}/big.bin`), { bytes: content.length, resumedFrom: 0 });
  t.deepEqual(await client.upload(Buffer.from('over TLS\n'), `${top}/small.txt`), { bytes: 9, resumedFrom: 0 });
  sameBytes(t, await readFile(join(srv.root, top, 'big.bin')), content, 'big.bin on the server');
  const entries = await client.list(top);
  t.deepEqual(entries.map((e) => [e.name, e.type === 'file' ? e.size : -1]).sort(), [
    ['big.bin', content.length],
    ['small.txt', 9],
  ]);
  t.deepEqual(await client.download(`${top}/big.bin`, join(dir, 'back.bin')), { bytes: content.length, resumedFrom: 0 });
  sameBytes(t, await readFile(join(dir, 'back.bin')), content, 'downloaded big.bin');
  const sink = collector();
  await client.download(`${top}/small.txt`, sink);
  t.is(sink.bytes().toString(), 'over TLS\n');
}

test('explicit TLS (AUTH TLS) with a CA file: upload, list, download byte-exact; data connections protected', async (t) => {
  const { cert, explicit } = await servers();
  const client = await connectTo(t, explicit, { secure: true, ca: cert.cert });
  await roundTrip(t, client, explicit);
});

test('explicit TLS with a pinned fingerprint (ftpes:// URL): works whatever the chain', async (t) => {
  const { cert, explicit } = await servers();
  const url = `ftpes://${explicit.user}@127.0.0.1:${explicit.port}`;
  // Lower case without colons: any spelling of the same fingerprint.
  const fingerprint = cert.fingerprint.replace(/:/g, '').toLowerCase();
  const client = await DfosClient.connect(url, { password: explicit.password, fingerprint, timeoutMs: 10_000 });
  t.teardown(() => client.close());
  t.is(client.port, explicit.port);
  await roundTrip(t, client, explicit);
});

test('a wrong pinned fingerprint: TlsVerificationError (an AuthError) naming both, before logging in', async (t) => {
  const { cert, explicit } = await servers();
  const before = await readdir(explicit.root);
  const err = await rejectsWith(t, DfosClient.connect(optionsFor(explicit, { secure: true, fingerprint: WRONG_FINGERPRINT })), TlsVerificationError);
  t.true(err instanceof AuthError);
  t.is(err.reason, `fingerprint mismatch: got ${cert.fingerprint}, expected ${WRONG_FINGERPRINT}`);
  t.is(err.fingerprint, cert.fingerprint);
  t.regex(err.message, /^connect to 127\.0\.0\.1:\d+ failed: TLS certificate verification failed: fingerprint mismatch: got [0-9A-F:]{95}, expected [0-9A-F:]{95}/);
  t.notRegex(err.message, /\n/);
  t.deepEqual(await readdir(explicit.root), before, 'nothing uploaded');
});

test('default verification (system CAs) refuses the self-signed certificate: TlsVerificationError with the reason', async (t) => {
  const { explicit, implicit } = await servers();
  for (const [srv, secure] of [
    [explicit, true],
    [implicit, 'implicit'],
  ] as const) {
    const err = await rejectsWith(t, DfosClient.connect(optionsFor(srv, { secure })), TlsVerificationError);
    t.is(err.reason, 'certificate not trusted (self-signed)');
    t.regex(err.message, /failed: TLS certificate verification failed: certificate not trusted \(self-signed\)/);
    t.true(err instanceof AuthError);
  }
});

test('a CA that did not sign the certificate, and a certificate for another name: TlsVerificationError', async (t) => {
  const { other, explicit } = await servers();
  const untrusted = await rejectsWith(t, DfosClient.connect(optionsFor(explicit, { secure: true, ca: other.pem })), TlsVerificationError);
  t.is(untrusted.reason, 'certificate not trusted (self-signed)');
  // A TLS server whose certificate is for other.example only, trusted as its own CA: only the name is wrong.
  const server = createTlsServer({ cert: other.pem, key: await readFile(other.key) }, (s) => s.end('220 hi\r\n'));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const port = (server.address() as AddressInfo).port;
  const wrongName = await rejectsWith(
    t,
    DfosClient.connect({ host: '127.0.0.1', port, user: 'u', password: 'p', secure: 'implicit', ca: other.cert, timeoutMs: 10_000 }),
    TlsVerificationError,
  );
  t.regex(wrongName.reason, /^name mismatch: .*127\.0\.0\.1/);
});

test('insecure: no verification, the transfer works', async (t) => {
  const { explicit } = await servers();
  const client = await connectTo(t, explicit, { secure: true, insecure: true });
  await roundTrip(t, client, explicit);
});

test('implicit TLS (ftps:// URL) with a CA, and with a fingerprint', async (t) => {
  const { cert, implicit } = await servers();
  const url = `ftps://${implicit.user}:${encodeURIComponent(implicit.password)}@localhost:${implicit.port}`;
  const client = await DfosClient.connect(url, { ca: cert.pem, timeoutMs: 10_000 });
  t.teardown(() => client.close());
  await roundTrip(t, client, implicit);
  const pinned = await connectTo(t, implicit, { secure: 'implicit', fingerprint: cert.fingerprint });
  t.true((await pinned.list()).length > 0);
});

test('URL schemes and TLS options are checked before connecting', async (t) => {
  const invalid = async (promise: Promise<unknown>, pattern: RegExp) => {
    const err = await rejectsWith(t, promise, ProtocolError);
    t.regex(err.message, pattern);
  };
  const base = { host: '127.0.0.1', port: 1, user: 'u', password: 'p' };
  await invalid(DfosClient.connect({ ...base, ca: 'x.pem' }), /ca needs TLS: secure: true or 'implicit'/);
  await invalid(DfosClient.connect({ ...base, secure: true, ca: 'x.pem', insecure: true }), /use only one of ca, fingerprint and insecure/);
  await invalid(DfosClient.connect({ ...base, secure: true, fingerprint: 'AA:BB' }), /fingerprint must be a SHA-256 fingerprint/);
  await invalid(DfosClient.connect('sftp://u@127.0.0.1', { password: 'p' }), /must start with ftp:\/\/, ftpes:\/\/ \(explicit TLS\) or ftps:\/\//);
  await invalid(DfosClient.connect('ftps://u@127.0.0.1'), /no password/);
  // ftps:// defaults to port 990 (nothing listens there on loopback in the test machine: refused).
  const err = await t.throwsAsync(DfosClient.connect('ftps://u:p@127.0.0.1', { timeoutMs: 5_000 }));
  t.regex(err?.message ?? '', /127\.0\.0\.1:990/);
  t.true(err instanceof ConnectionError || err instanceof TlsVerificationError);
});

test('dfos CLI: put, ls, get over ftpes:// with --ca and over ftps:// with DFOS_FINGERPRINT; exit 3 and one line when verification fails', async (t) => {
  if (!existsSync(CLI)) throw new Error('dist/dfos.cjs is missing; run `npx tsc -p tsconfig.json` first');
  const { cert, other, explicit, implicit } = await servers();
  const dir = await tempDir(t, 'dfos-tls-cli-');
  const content = randomBytes(256 * 1024 + 5);
  await writeFile(join(dir, 'up.bin'), content);
  const top = `cli-${randomBytes(3).toString('hex')}`;
  const explicitUrl = `ftpes://${explicit.user}@127.0.0.1:${explicit.port}`;
  const implicitUrl = `ftps://${implicit.user}@localhost:${implicit.port}`;
  const env = { DFOS_PASSWORD: explicit.password };

  const ok = async (args: string[], extraEnv: Record<string, string> = {}) => {
    const r = await runCli(CLI, args, { env: { ...env, ...extraEnv }, cwd: dir });
    t.is(r.code, 0, `dfos ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  await ok(['mkdir', top, '--url', explicitUrl, '--ca', cert.cert]);
  await ok(['put', 'up.bin', `${top}/`, '--url', explicitUrl, '--ca', cert.cert]);
  sameBytes(t, await readFile(join(explicit.root, top, 'up.bin')), content, 'uploaded by the CLI');
  const ls = await ok(['ls', top, '--url', explicitUrl, '--fingerprint', cert.fingerprint]);
  t.regex(ls.stdout.toString(), /up\.bin/);
  // The implicit-TLS server has a root of its own.
  const pinned = { DFOS_FINGERPRINT: cert.fingerprint };
  await ok(['mkdir', top, '--url', implicitUrl], pinned);
  await ok(['put', 'up.bin', `${top}/up.bin`, '--url', implicitUrl], pinned);
  await ok(['get', `${top}/up.bin`, 'back.bin', '--url', implicitUrl], pinned);
  sameBytes(t, await readFile(join(dir, 'back.bin')), content, 'downloaded by the CLI');
  await ok(['get', `${top}/up.bin`, 'insecure.bin', '--url', implicitUrl, '--insecure']);
  await ok(['get', `${top}/up.bin`, 'insecure-env.bin', '--url', explicitUrl], { DFOS_INSECURE: '1' });
  sameBytes(t, await readFile(join(dir, 'insecure.bin')), content, 'downloaded with --insecure');

  const fails = async (args: string[], pattern: RegExp, extraEnv: Record<string, string> = {}) => {
    const r = await runCli(CLI, args, { env: { ...env, ...extraEnv }, cwd: dir });
    t.is(r.code, 3, `dfos ${args.join(' ')}: ${r.stderr}`);
    t.log(r.stderr.trim());
    t.is(r.stderr.split('\n').length, 2, `one line: ${JSON.stringify(r.stderr)}`);
    t.regex(r.stderr, pattern);
  };
  await fails(['ls', '--url', explicitUrl], /^dfos: connect to 127\.0\.0\.1:\d+ failed: TLS certificate verification failed: certificate not trusted \(self-signed\).*--ca FILE, --fingerprint SHA256 or --insecure/);
  await fails(['put', 'up.bin', `${top}/again.bin`, '--url', implicitUrl, '--fingerprint', WRONG_FINGERPRINT], /fingerprint mismatch: got [0-9A-F:]{95}, expected [0-9A-F:]{95}/);
  t.false(existsSync(join(implicit.root, top, 'again.bin')), 'nothing uploaded');
  await fails(['ls', '--url', implicitUrl], /certificate not trusted \(self-signed\)/, { DFOS_CA: other.cert });

  // Usage errors (exit 2): a TLS option with ftp://, a malformed fingerprint, an unreadable CA file.
  const usage = async (args: string[], pattern: RegExp) => {
    const r = await runCli(CLI, args, { env, cwd: dir });
    t.is(r.code, 2, `dfos ${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, pattern);
  };
  await usage(['ls', '--url', `ftp://u@127.0.0.1:${explicit.port}`, '--insecure'], /--insecure needs an ftpes:\/\/ or ftps:\/\/ URL/);
  await usage(['ls', '--url', explicitUrl, '--fingerprint', 'nope'], /--fingerprint must be a SHA-256 fingerprint/);
  await usage(['ls', '--url', explicitUrl, '--ca', join(dir, 'missing.pem')], /--ca .*missing\.pem: cannot read/);
});
