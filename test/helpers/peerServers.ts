import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { closedPort } from './clientFixtures.js';

/**
 * Other FTP servers for the client tests, vsftpd and pyftpdlib (Debian packages "vsftpd" and
 * "python3-pyftpdlib"; a missing one FAILS the tests, naming the package), started on
 * 127.0.0.1 with a free control port, passive ports chosen by the kernel and a temporary
 * directory, and stopped by their PID (process group). vsftpd logs in local system users
 * through PAM: startVsftpd creates the user `dfospeer` (if it is not there yet; needs root,
 * as in CI; home "/" if its home is missing, since vsftpd changes into it before local_root)
 * and gives it a new random password on every start. With `tls`, vsftpd requires FTPS
 * (explicit, or implicit on its port) with the given certificate.
 */

export const VSFTPD = '/usr/sbin/vsftpd';
/** Debian's python3 (python3-pyftpdlib is installed for it, not for a python3 earlier on PATH). */
export const PYTHON = '/usr/bin/python3';
export const PEER_USER = 'dfospeer';
const START_MS = 15_000;

export interface Peer {
  name: 'vsftpd' | 'pyftpdlib';
  host: string;
  port: number;
  user: string;
  password: string;
  /** Where the logged-in user's files are on disk. */
  root: string;
  /** Whether the server's sessions run as a non-root user (file modes then refuse reads). */
  dropsPrivileges: boolean;
  stop(): Promise<void>;
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program (no shell) with `input` on stdin, killed after `timeoutMs`; never rejects for a non-zero exit. */
export function runProgram(file: string, args: string[], input = '', timeoutMs = 10_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

export function missingPackage(what: string, debianPackage: string, why: string): Error {
  return new Error(`${what} is required by this test but is not usable (${why}): install the Debian package "${debianPackage}" (apt-get install -y ${debianPackage})`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits (bounded) until `port` greets with a 220 line; fails early if the process exits. */
async function waitGreeting(port: number, child: ChildProcess, log: () => string, implicitTls = false): Promise<void> {
  const deadline = Date.now() + START_MS;
  for (let attempt = 0; attempt < 1000 && Date.now() < deadline; attempt++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`the server exited (${child.exitCode ?? child.signalCode}) before listening: ${log().trim()}`);
    }
    const greeting = await new Promise<string>((resolve) => {
      // Implicit TLS: the greeting comes after the handshake (any certificate will do here).
      const s = implicitTls ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : connect({ host: '127.0.0.1', port });
      let text = '';
      const done = () => {
        s.destroy();
        resolve(text);
      };
      s.setTimeout(1000, done);
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (text.includes('\n')) done();
      });
      s.on('error', done);
      s.on('close', done);
    });
    if (greeting.startsWith('220')) return;
    await sleep(50);
  }
  throw new Error(`no 220 greeting on 127.0.0.1:${port} within ${START_MS} ms: ${log().trim()}`);
}

/** Starts `file args` in its own process group; stop() ends that group (the server and the session processes it forked) by the PID. */
export async function startServer(
  file: string,
  args: string[],
  port: number,
  cleanup: () => Promise<void>,
  implicitTls = false,
): Promise<() => Promise<void>> {
  const child = spawn(file, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-4000)));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (log = (log + d).slice(-4000)));
  const spawned = new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  await spawned;
  const pid = child.pid!;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
      } catch {
        // Already gone.
      }
    };
    signal('SIGTERM');
    const gone = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
    if (!gone) signal('SIGKILL');
    await Promise.race([exited, sleep(5000)]);
    signal('SIGKILL'); // Session processes that outlived the listener.
    await cleanup();
  };
  try {
    await waitGreeting(port, child, () => log, implicitTls);
  } catch (err) {
    await stop();
    throw err;
  }
  return stop;
}

/**
 * A system user for vsftpd's PAM logins (created if missing) with a new random password; its
 * uid and gid. Set once per process and user name: several vsftpd instances of one test file
 * share it, and test files running at the same time must use different user names (each
 * start would otherwise change the other's password).
 */
const systemUsers = new Map<string, Promise<{ uid: number; gid: number; password: string }>>();
export function peerUser(name: string = PEER_USER): Promise<{ uid: number; gid: number; password: string }> {
  let p = systemUsers.get(name);
  if (!p) {
    p = createPeerUser(name, randomBytes(18).toString('base64url'));
    systemUsers.set(name, p);
  }
  return p;
}

async function createPeerUser(name: string, password: string): Promise<{ uid: number; gid: number; password: string }> {
  if (process.getuid?.() !== 0) throw new Error('the vsftpd tests create a system user for PAM logins and must run as root (as CI does)');
  let id = await runProgram('id', ['-u', name]);
  if (id.code !== 0) {
    // vsftpd changes to the home directory before local_root: "/" always exists.
    const add = await runProgram('useradd', ['-M', '-N', '-d', '/', '-s', '/bin/bash', '-c', 'DFOS client peer test', name]);
    // 9: created meanwhile by another run; that is fine.
    if (add.code !== 0 && add.code !== 9) throw new Error(`useradd ${name} failed (${add.code}): ${add.stderr.trim()}`);
    id = await runProgram('id', ['-u', name]);
  }
  const home = (await runProgram('getent', ['passwd', name])).stdout.split(':')[5] ?? '';
  if (home === '' || !existsSync(home)) {
    const mod = await runProgram('usermod', ['-d', '/', name]);
    if (mod.code !== 0) throw new Error(`usermod -d / ${name} failed (${mod.code}): ${mod.stderr.trim()}`);
  }
  const gid = await runProgram('id', ['-g', name]);
  const set = await runProgram('chpasswd', [], `${name}:${password}\n`);
  if (set.code !== 0) throw new Error(`chpasswd for ${name} failed (${set.code}): ${set.stderr.trim()}`);
  return { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()), password };
}

/** What a vsftpd instance needs beyond the plain setup: TLS, or other vsftpd.conf lines. */
export interface VsftpdOptions {
  /** FTPS: the PEM certificate and key files; explicit TLS (AUTH TLS) is then required for logins and data. */
  tls?: { cert: string; key: string; implicit?: boolean };
  /** The system user to log in (default `dfospeer`); one per test file, see peerUser(). */
  user?: string;
}

/** vsftpd.conf lines for FTPS, required for logins and data, with session reuse on data connections. */
function vsftpdTlsConfig(tls: NonNullable<VsftpdOptions['tls']>): string[] {
  return [
    'ssl_enable=YES',
    `rsa_cert_file=${tls.cert}`,
    `rsa_private_key_file=${tls.key}`,
    'force_local_logins_ssl=YES',
    'force_local_data_ssl=YES',
    'require_ssl_reuse=YES',
    'ssl_ciphers=HIGH',
    `implicit_ssl=${tls.implicit === true ? 'YES' : 'NO'}`,
  ];
}

export async function startVsftpd(options: VsftpdOptions = {}): Promise<Peer> {
  if (!existsSync(VSFTPD)) throw missingPackage(VSFTPD, 'vsftpd', 'not found');
  const user = options.user ?? PEER_USER;
  const { uid, gid, password } = await peerUser(user);
  const base = await mkdtemp(join(tmpdir(), 'dfos-peer-vsftpd-'));
  await chmod(base, 0o755);
  const root = join(base, 'files');
  const empty = join(base, 'empty');
  await mkdir(root);
  await mkdir(empty, { mode: 0o755 });
  await chown(root, uid, gid);
  const port = await closedPort();
  const conf = join(base, 'vsftpd.conf');
  await writeFile(
    conf,
    [
      'listen=YES',
      'listen_address=127.0.0.1',
      `listen_port=${port}`,
      'background=NO',
      'anonymous_enable=NO',
      'local_enable=YES',
      'write_enable=YES',
      'local_umask=022',
      `local_root=${root}`,
      'chroot_local_user=YES',
      'allow_writeable_chroot=YES',
      'pasv_enable=YES',
      'pasv_address=127.0.0.1',
      // No pasv_min_port/pasv_max_port: the kernel picks free passive ports.
      'seccomp_sandbox=NO',
      'isolate=NO',
      'isolate_network=NO',
      'pam_service_name=vsftpd',
      `secure_chroot_dir=${empty}`,
      'xferlog_enable=NO',
      ...(options.tls ? vsftpdTlsConfig(options.tls) : ['ssl_enable=NO']),
      '',
    ].join('\n'),
  );
  const stop = await startServer(VSFTPD, [conf], port, () => rm(base, { recursive: true, force: true }), options.tls?.implicit === true);
  return { name: 'vsftpd', host: '127.0.0.1', port, user, password, root, dropsPrivileges: true, stop };
}

export async function startPyftpdlib(): Promise<Peer> {
  if (!existsSync(PYTHON)) throw missingPackage(PYTHON, 'python3-pyftpdlib', 'not found');
  const check = await runProgram(PYTHON, ['-c', 'import pyftpdlib']);
  if (check.code !== 0) throw missingPackage(`${PYTHON} -m pyftpdlib`, 'python3-pyftpdlib', check.stderr.trim().split('\n').at(-1) ?? 'import failed');
  const base = await mkdtemp(join(tmpdir(), 'dfos-peer-pyftpdlib-'));
  const root = join(base, 'files');
  await mkdir(root);
  const password = randomBytes(18).toString('base64url');
  const port = await closedPort();
  // No -r: the kernel picks free passive ports.
  const args = ['-m', 'pyftpdlib', '-i', '127.0.0.1', '-p', String(port), '-w', '-d', root, '-u', 'peer', '-P', password];
  const stop = await startServer(PYTHON, args, port, () => rm(base, { recursive: true, force: true }));
  return { name: 'pyftpdlib', host: '127.0.0.1', port, user: 'peer', password, root, dropsPrivileges: false, stop };
}

