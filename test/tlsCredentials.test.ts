import test, { type ExecutionContext } from 'ava';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, TLSSocket, type PeerCertificate } from 'node:tls';
import { parseServerConfig } from '../src/config/serverConfig.js';
import { DfosServer } from '../src/server/DfosServer.js';
import { isDnsName } from '../src/tls/certificateNames.js';
import { generateSelfSignedCertificate } from '../src/tls/selfSignedCertificate.js';
import { TlsCredentials, type TlsCredentialsOptions } from '../src/tls/TlsCredentials.js';
import { TlsCredentialsError, type TlsCredentialsProblem } from '../src/tls/TlsCredentialsError.js';
import { dfosLog, dfosRecords } from './helpers/logFiles.js';
import { nonEmptyLines, pollUntil, spawnServer } from './helpers/serverProcess.js';
import { startTestServer, writeUsersFile } from './helpers/testServer.js';

const FINGERPRINT = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

async function tempDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'dfos-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function options(stateDir: string, more: Partial<TlsCredentialsOptions> = {}): TlsCredentialsOptions {
  return { mode: 'on', minVersion: 'TLSv1.2', sessionReuse: 'required', stateDir, ...more };
}

/** Writes a PEM pair (default: a fresh self-signed one for localhost) and returns the file names. */
async function writePair(dir: string, name: string, pem?: { cert: string; key: string }): Promise<{ certFile: string; keyFile: string; cert: string; key: string }> {
  const pair = pem ?? (await generateSelfSignedCertificate(['localhost', '127.0.0.1']));
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  await writeFile(certFile, pair.cert);
  await writeFile(keyFile, pair.key);
  return { certFile, keyFile, ...pair };
}

/** A CA and a leaf for localhost it signed: the leaf's cert file carries the chain (leaf, then CA). */
async function caSignedPair(): Promise<{ chain: string; key: string; ca: string; leafFingerprint: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const leafKeys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const notBefore = new Date(Date.now() - 3_600_000);
  const notAfter = new Date(Date.now() + 86_400_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: 'CN=DFOS test CA',
      notBefore,
      notAfter,
      keys: caKeys,
      signingAlgorithm: alg,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
    },
    webcrypto,
  );
  const leaf = await x509.X509CertificateGenerator.create(
    {
      serialNumber: '02',
      issuer: ca.subject,
      subject: 'CN=localhost',
      notBefore,
      notAfter,
      publicKey: leafKeys.publicKey,
      signingKey: caKeys.privateKey,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }])],
    },
    webcrypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { chain: `${leaf.toString('pem')}\n${ca.toString('pem')}\n`, key, ca: ca.toString('pem'), leafFingerprint: new X509Certificate(leaf.toString('pem')).fingerprint256 };
}

/**
 * A TLS server the way the FTP engine makes one: plain TCP, each socket upgraded with
 * `new TLSSocket(socket, { isServer: true, secureContext })`, taking the context at accept time.
 */
async function tlsServer(t: ExecutionContext, creds: TlsCredentials): Promise<number> {
  const server: Server = createServer((socket) => {
    const secure = new TLSSocket(socket, { isServer: true, secureContext: creds.secureContext() });
    secure.on('error', () => socket.destroy());
    secure.on('secure', () => secure.end('hello\n'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

/** Connects with tls.connect; resolves with the protocol and the server's certificate, or rejects. */
function handshake(port: number, opts: { ca: string; servername?: string; maxVersion?: 'TLSv1.2' | 'TLSv1.3' }): Promise<{ protocol: string | null; cert: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, servername: opts.servername ?? 'localhost', ca: opts.ca, ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}) });
    socket.once('secureConnect', () => {
      const result = { protocol: socket.getProtocol(), cert: socket.getPeerCertificate() };
      socket.destroy();
      resolve(result);
    });
    socket.once('error', (err) => {
      socket.destroy();
      reject(err);
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('handshake timed out')));
  });
}

test('first load generates an ECDSA P-256 certificate in <state-dir>/tls: modes 0700/0600/0644, the local names, the host name and the extra names', async (t) => {
  const dir = await tempDir(t);
  const stateDir = join(dir, 'state');
  const creds = await TlsCredentials.load(options(stateDir, { extraNames: ['ftp.example.com', '192.0.2.7', '2001:db8::7'] }));
  const certFile = join(stateDir, 'tls', 'cert.pem');
  const keyFile = join(stateDir, 'tls', 'key.pem');
  t.is(creds.certFile, certFile);
  t.is(creds.keyFile, keyFile);
  t.deepEqual(creds.source, { kind: 'generated', generated: true, reason: 'first start' });
  t.is((await stat(stateDir)).mode & 0o777, 0o700, 'state dir created 0700');
  t.is((await stat(keyFile)).mode & 0o777, 0o600, 'key 0600');
  t.is((await stat(certFile)).mode & 0o777, 0o644, 'cert 0644');

  const certPem = await readFile(certFile, 'utf8');
  const cert = new X509Certificate(certPem);
  t.regex(creds.fingerprint, FINGERPRINT);
  t.is(creds.fingerprint, cert.fingerprint256);
  const sans = (cert.subjectAltName ?? '').split(', ');
  for (const expected of ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1', 'DNS:ftp.example.com', 'IP Address:192.0.2.7', 'IP Address:2001:DB8:0:0:0:0:0:7']) {
    t.true(sans.includes(expected), `${expected} in ${cert.subjectAltName}`);
  }
  if (isDnsName(hostname())) t.true(sans.includes(`DNS:${hostname()}`), `the host name ${hostname()} in ${cert.subjectAltName}`);
  const key = createPrivateKey(await readFile(keyFile, 'utf8'));
  t.is(key.asymmetricKeyType, 'ec');
  t.is(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  t.true(cert.checkPrivateKey(key));
  t.true(cert.checkIssued(cert), 'self-signed');
  t.true(new Date(cert.validTo).getTime() > Date.now() + 5 * 365 * 86_400_000, 'valid for years');
  t.true(new Date(cert.validFrom).getTime() <= Date.now());
});

test('later loads reuse the generated certificate: same fingerprint, files untouched', async (t) => {
  const dir = await tempDir(t);
  const stateDir = join(dir, 'state');
  const first = await TlsCredentials.load(options(stateDir));
  const before = await stat(join(stateDir, 'tls', 'cert.pem'));
  const second = await TlsCredentials.load(options(stateDir, { extraNames: ['other.example.com'] }));
  t.is(second.fingerprint, first.fingerprint);
  t.deepEqual(second.source, { kind: 'generated', generated: false });
  t.is((await stat(join(stateDir, 'tls', 'cert.pem'))).mtimeMs, before.mtimeMs);
});

test('an existing state dir keeps its mode; a key left alone by an interrupted start is replaced; a certificate without its key is an error', async (t) => {
  const dir = await tempDir(t);
  const stateDir = join(dir, 'state');
  await mkdir(join(stateDir, 'tls'), { recursive: true, mode: 0o750 });
  await chmod(stateDir, 0o750);
  await writeFile(join(stateDir, 'tls', 'key.pem'), 'half-way\n');
  const creds = await TlsCredentials.load(options(stateDir));
  t.deepEqual(creds.source, { kind: 'generated', generated: true, reason: 'certificate missing' });
  t.is((await stat(stateDir)).mode & 0o777, 0o750);
  t.is((await stat(join(stateDir, 'tls', 'key.pem'))).mode & 0o777, 0o600);

  await rm(join(stateDir, 'tls', 'key.pem'));
  const err = await t.throwsAsync(TlsCredentials.load(options(stateDir)), { instanceOf: TlsCredentialsError });
  t.is(err!.problem, 'missing');
  t.is(err!.message, `TLS key ${join(stateDir, 'tls', 'key.pem')}: no such file; move both files in ${join(stateDir, 'tls')} aside to have a new certificate generated`);
});

test('an expired generated certificate is replaced by a new one', async (t) => {
  const dir = await tempDir(t);
  const stateDir = join(dir, 'state');
  const old = await generateSelfSignedCertificate(['localhost'], new Date(Date.now() - 11 * 365 * 86_400_000));
  await mkdir(join(stateDir, 'tls'), { recursive: true });
  await writeFile(join(stateDir, 'tls', 'cert.pem'), old.cert);
  await writeFile(join(stateDir, 'tls', 'key.pem'), old.key, { mode: 0o644 });
  const oldFingerprint = new X509Certificate(old.cert).fingerprint256;
  const creds = await TlsCredentials.load(options(stateDir));
  t.deepEqual(creds.source, { kind: 'generated', generated: true, reason: 'expired', replaced: oldFingerprint });
  t.not(creds.fingerprint, oldFingerprint);
  t.true(creds.validTo.getTime() > Date.now());
  t.is((await stat(join(stateDir, 'tls', 'key.pem'))).mode & 0o777, 0o600, 'the new key is 0600 whatever the old one was');
});

test('a given certificate and key are loaded as they are (a chain after the certificate is served), nothing is generated', async (t) => {
  const dir = await tempDir(t);
  const stateDir = join(dir, 'state');
  const { chain, key, ca, leafFingerprint } = await caSignedPair();
  const files = await writePair(dir, 'server', { cert: chain, key });
  const creds = await TlsCredentials.load(options(stateDir, { certFile: files.certFile, keyFile: files.keyFile }));
  t.deepEqual(creds.source, { kind: 'files' });
  t.is(creds.fingerprint, leafFingerprint);
  t.is(creds.chainLength, 2);
  t.false(existsSync(stateDir), 'no state dir is made for a given pair');
  // A client that trusts only the CA verifies the server: the intermediate/CA is sent.
  const port = await tlsServer(t, creds);
  const { cert } = await handshake(port, { ca });
  t.is(cert.fingerprint256, leafFingerprint);
});

test('each problem with a given pair is one line naming the file and the problem', async (t) => {
  const dir = await tempDir(t);
  const stateDir = join(dir, 'state');
  const good = await writePair(dir, 'good');
  const other = await writePair(dir, 'other');
  const garbage = join(dir, 'garbage.pem');
  await writeFile(garbage, 'hello, not a certificate\n');
  const der = join(dir, 'cert.der');
  await writeFile(der, new X509Certificate(good.cert).raw);
  const brokenPem = join(dir, 'broken.pem');
  await writeFile(brokenPem, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
  const encrypted = join(dir, 'encrypted.key');
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  await writeFile(encrypted, privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'secret' }) as string);
  const missing = join(dir, 'missing.pem');

  const cases: Array<[string, string, TlsCredentialsProblem, string]> = [
    [missing, good.keyFile, 'missing', `TLS certificate ${missing}: no such file; check --tls-cert`],
    [good.certFile, missing, 'missing', `TLS key ${missing}: no such file; check --tls-key`],
    [dir, good.keyFile, 'unreadable', `TLS certificate ${dir}: cannot read it (it is a directory); check --tls-cert`],
    [garbage, good.keyFile, 'not-pem', `TLS certificate ${garbage}: not PEM (no "-----BEGIN CERTIFICATE-----" block); check --tls-cert`],
    [good.certFile, garbage, 'not-pem', `TLS key ${garbage}: not PEM (no "-----BEGIN PRIVATE KEY-----" block); check --tls-key`],
    [der, good.keyFile, 'not-pem', `TLS certificate ${der}: is DER (binary), not PEM; convert it with: openssl x509 -inform der -in ${der} -out ${der}.pem; check --tls-cert`],
    [good.keyFile, good.certFile, 'not-pem', `TLS certificate ${good.keyFile}: holds a private key, not a certificate (are the certificate and key files swapped?); check --tls-cert`],
    [good.certFile, good.certFile, 'not-pem', `TLS key ${good.certFile}: holds a certificate, not a private key (are the certificate and key files swapped?); check --tls-key`],
    [good.certFile, encrypted, 'encrypted', `TLS key ${encrypted}: is encrypted (protected by a passphrase); give an unencrypted key, e.g. from: openssl pkey -in ${encrypted} -out KEY.pem; check --tls-key`],
    [good.certFile, other.keyFile, 'mismatch', `TLS key ${other.keyFile}: does not match the certificate ${good.certFile}; check --tls-key`],
  ];
  for (const [certFile, keyFile, problem, message] of cases) {
    const err = await t.throwsAsync(TlsCredentials.load(options(stateDir, { certFile, keyFile })), { instanceOf: TlsCredentialsError }, message);
    t.is(err?.problem, problem, message);
    t.is(err?.message, message);
    t.false(err?.message.includes('\n'), message);
  }
  const err = await t.throwsAsync(TlsCredentials.load(options(stateDir, { certFile: brokenPem, keyFile: good.keyFile })), { instanceOf: TlsCredentialsError });
  t.is(err?.problem, 'invalid');
  t.regex(err!.message, new RegExp(`^TLS certificate ${brokenPem}: the certificate cannot be parsed \\(.+\\); check --tls-cert$`));
  t.false(existsSync(stateDir));
});

test('a TLS handshake with the generated certificate: verified by name and IP, and --tls-min-version is honoured', async (t) => {
  const dir = await tempDir(t);
  const stateDir = join(dir, 'state');
  const v12 = await TlsCredentials.load(options(stateDir));
  const ca = await readFile(v12.certFile, 'utf8');
  const port12 = await tlsServer(t, v12);
  const byName = await handshake(port12, { ca, servername: 'localhost' });
  t.is(byName.cert.fingerprint256, v12.fingerprint);
  t.is(byName.protocol, 'TLSv1.3');
  const tls12 = await handshake(port12, { ca, maxVersion: 'TLSv1.2' });
  t.is(tls12.protocol, 'TLSv1.2', 'TLSv1.2 accepted with the default minimum');
  // Node checks an IP address against the IP SANs when servername is not given.
  const byIp = await new Promise<boolean>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: port12, ca }, () => {
      s.destroy();
      resolve(s.authorized);
    });
    s.once('error', reject);
  });
  t.true(byIp, '127.0.0.1 verifies');
  await t.throwsAsync(handshake(port12, { ca, servername: 'not-in-the-cert.example' }), { message: /Hostname\/IP does not match|altnames/i });

  const v13 = await TlsCredentials.load(options(stateDir, { minVersion: 'TLSv1.3' }));
  t.is(v13.minVersion, 'TLSv1.3');
  t.is(v13.fingerprint, v12.fingerprint);
  const port13 = await tlsServer(t, v13);
  t.is((await handshake(port13, { ca })).protocol, 'TLSv1.3');
  await t.throwsAsync(handshake(port13, { ca, maxVersion: 'TLSv1.2' }), { message: /version|alert/i }, 'a TLSv1.2-only client is refused');
});

test('the settings the engine reads: mode, minVersion, sessionReuse, implicitPort (0 means none)', async (t) => {
  const dir = await tempDir(t);
  const a = await TlsCredentials.load(options(join(dir, 'state'), { mode: 'required', sessionReuse: 'off', implicitPort: 990 }));
  t.like(a, { mode: 'required', minVersion: 'TLSv1.2', sessionReuse: 'off', implicitPort: 990 });
  const b = await TlsCredentials.load(options(join(dir, 'state'), { implicitPort: 0 }));
  t.is(b.implicitPort, undefined);
});

test('reload: a broken new pair is reported and the old one kept; a good one takes over for new connections', async (t) => {
  const dir = await tempDir(t);
  const first = await writePair(dir, 'server');
  const creds = await TlsCredentials.load(options(join(dir, 'state'), { certFile: first.certFile, keyFile: first.keyFile }));
  const oldContext = creds.secureContext();
  const oldFingerprint = creds.fingerprint;
  const port = await tlsServer(t, creds);

  t.like(await creds.reload(), { ok: true, fingerprint: oldFingerprint, changed: false });

  // Half a rotation: the new certificate is in place, its key not yet.
  const next = await generateSelfSignedCertificate(['localhost']);
  await writeFile(first.certFile, next.cert);
  const broken = await creds.reload();
  t.false(broken.ok);
  if (!broken.ok) {
    t.is(broken.error.problem, 'mismatch');
    t.is(broken.error.message, `TLS key ${first.keyFile}: does not match the certificate ${first.certFile}; check --tls-key`);
  }
  t.is(creds.fingerprint, oldFingerprint);
  t.is(creds.secureContext(), oldContext);
  t.is((await handshake(port, { ca: first.cert })).cert.fingerprint256, oldFingerprint, 'still serving the old pair');

  await writeFile(first.keyFile, next.key);
  const done = await creds.reload();
  const newFingerprint = new X509Certificate(next.cert).fingerprint256;
  t.like(done, { ok: true, fingerprint: newFingerprint, changed: true });
  t.is(creds.fingerprint, newFingerprint);
  t.not(creds.secureContext(), oldContext);
  t.is((await handshake(port, { ca: next.cert })).cert.fingerprint256, newFingerprint, 'new connections get the new pair');
});

test('reload of the generated pair: files removed → a new one is generated; garbage → the old one kept', async (t) => {
  const dir = await tempDir(t);
  const stateDir = join(dir, 'state');
  const creds = await TlsCredentials.load(options(stateDir));
  const old = creds.fingerprint;
  await writeFile(join(stateDir, 'tls', 'cert.pem'), 'garbage');
  const bad = await creds.reload();
  t.false(bad.ok);
  t.is(creds.fingerprint, old);
  await rm(join(stateDir, 'tls'), { recursive: true });
  const good = await creds.reload();
  t.like(good, { ok: true, changed: true, source: { kind: 'generated', generated: true, reason: 'first start' } });
  t.not(creds.fingerprint, old);
});

test('DfosServer: the generated certificate lives in the test server state dir, its fingerprint is logged at info, reloadTls logs once', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const tls = srv.server.tls;
  t.truthy(tls);
  t.is(tls!.mode, 'on');
  t.is(tls!.certFile, join(srv.stateDir, 'tls', 'cert.pem'));
  t.true(srv.stateDir.startsWith(srv.dir));
  const line = await pollUntil(async () => (await dfosLog(srv.logDir)).find((r) => String(r.message).startsWith('TLS certificate generated')), 5000);
  t.is(line?.level, 'info');
  t.is(line?.fingerprint, tls!.fingerprint);
  t.regex(String(line?.fingerprint), FINGERPRINT);

  const result = await srv.server.reloadTls();
  t.like(result, { ok: true, changed: false });
  const unchanged = await dfosRecords(srv.logDir, (r) => String(r.message).startsWith('TLS certificate unchanged'));
  t.is(unchanged.length, 1);
});

test('DfosServer: --tls off builds no TLS settings and makes no state dir', async (t) => {
  const srv = await startTestServer({ config: { tls: 'off' } });
  t.teardown(() => srv.stop());
  t.is(srv.server.tls, undefined);
  t.false(existsSync(srv.stateDir));
  t.is(await srv.server.reloadTls(), undefined);
});

test('DfosServer.start refuses a bad given pair before listening, with the one-line message', async (t) => {
  const dir = await tempDir(t);
  const usersFile = join(dir, 'users.json');
  await writeUsersFile(usersFile, [{ name: 'alice', password: 'alice-pw' }]);
  const good = await writePair(dir, 'good');
  const other = await writePair(dir, 'other');
  const config = parseServerConfig({
    host: '127.0.0.1',
    port: 0,
    pasvMin: 0,
    pasvMax: 0,
    storage: join(dir, 'storage'),
    logDir: join(dir, 'logs'),
    users: usersFile,
    stateDir: join(dir, 'state'),
    tlsCert: good.certFile,
    tlsKey: other.keyFile,
    console: false,
  });
  await t.throwsAsync(DfosServer.start(config), { message: `TLS key ${other.keyFile}: does not match the certificate ${good.certFile}; check --tls-key` });
});

test('dfos serve: ./state lands in the working directory; SIGHUP logs one TLS reload line; a missing --tls-key file exits 1 with one line', async (t) => {
  const proc = await spawnServer();
  t.teardown(() => proc.cleanup());
  t.true(existsSync(join(proc.dir, 'state', 'tls', 'cert.pem')), 'default --state-dir ./state is relative to the working directory');
  t.is((await stat(join(proc.dir, 'state', 'tls', 'key.pem'))).mode & 0o777, 0o600);
  proc.child.kill('SIGHUP');
  const lines = await pollUntil(async () => {
    const log = await dfosLog(proc.logDir);
    const tls = log.filter((r) => r.why === 'SIGHUP' && String(r.message).startsWith('TLS certificate'));
    const users = log.filter((r) => r.message === 'Users reloaded');
    return tls.length > 0 && users.length > 0 ? tls : undefined;
  }, 10_000);
  t.is(lines?.length, 1);
  t.is(lines?.[0]?.message, 'TLS certificate unchanged');
  proc.child.kill('SIGTERM');
  t.deepEqual(await proc.waitExit(30_000), { code: 0, signal: null });

  const bad = await spawnServer({ args: ['--tls-cert', join(proc.dir, 'state', 'tls', 'cert.pem'), '--tls-key', 'nope.key'], noWait: true });
  t.teardown(() => bad.cleanup());
  t.deepEqual(await bad.waitExit(30_000), { code: 1, signal: null });
  const err = nonEmptyLines(bad.stderr());
  t.deepEqual(err, [`dfos: TLS key ${join(bad.dir, 'nope.key')}: no such file; check --tls-key`]);
});
