import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FTPError } from 'basic-ftp';
import {
  ConnectionError,
  DfosClient,
  DfosError,
  NotFoundError,
  PermissionError,
  ProtocolError,
  UnsupportedError,
} from '../src/client/index.js';
import { classify550, toDfosError } from '../src/client/errorMapping.js';
import { collector, runCli, sameBytes, tempDir, type CliRun } from './helpers/clientFixtures.js';
import { startPyftpdlib, startVsftpd, type Peer } from './helpers/peerServers.js';

/**
 * DfosClient and the `dfos` CLI against two other FTP servers, vsftpd and pyftpdlib (Debian
 * packages "vsftpd" and "python3-pyftpdlib"; a missing one FAILS these tests, naming the
 * package). Each server is started once for this file (see helpers/peerServers.ts: loopback,
 * free ports, a temporary directory, stopped by its PID; vsftpd logs in the system user
 * `dfospeer`, created if missing, which needs root as in CI).
 */

const CLI = fileURLToPath(new URL('../dist/dfos.cjs', import.meta.url));

/** Each server is started once, on first use, and stopped after the last test. */
const started = new Map<Peer['name'], Promise<Peer>>();
function peer(name: Peer['name']): Promise<Peer> {
  let p = started.get(name);
  if (!p) {
    p = name === 'vsftpd' ? startVsftpd() : startPyftpdlib();
    started.set(name, p);
  }
  return p;
}
test.after.always(async () => {
  for (const p of started.values()) {
    const srv = await p.catch(() => undefined);
    await srv?.stop();
  }
});

async function connectTo(t: ExecutionContext, srv: Peer): Promise<DfosClient> {
  const client = await DfosClient.connect({ host: srv.host, port: srv.port, user: srv.user, password: srv.password, timeoutMs: 10_000 });
  t.teardown(() => client.close());
  return client;
}

/** Asserts a rejection is exactly `Class` (a DfosError) and returns it. */
async function rejectsWith<E extends DfosError>(t: ExecutionContext, promise: Promise<unknown>, Class: new (...args: never[]) => E, what: string): Promise<E> {
  try {
    await promise;
  } catch (err) {
    t.true(err instanceof DfosError, `${what}: not a DfosError: ${String(err)}`);
    t.is((err as Error).name, Class.name, `${what}: ${(err as Error).message}`);
    return err as E;
  }
  t.fail(`${what}: expected ${Class.name}, but the call succeeded`);
  throw new Error('unreachable');
}

for (const name of ['vsftpd', 'pyftpdlib'] as const) {
  test(`DfosClient against ${name}: upload, list, download, resumed download and upload, rename, delete, typed errors, view unsupported`, async (t) => {
    const srv = await peer(name);
    const dir = await tempDir(t, 'dfos-peer-client-');
    const client = await connectTo(t, srv);
    // A per-test folder, so the client and CLI tests do not see each other's files.
    const top = `client-${randomBytes(3).toString('hex')}`;
    await client.mkdir(top);
    const at = (p: string) => `${top}/${p}`;
    const disk = (p: string) => join(srv.root, top, p);

    // Upload: a local file, a Buffer.
    const content = randomBytes(6 * 1024 * 1024 + 123);
    const local = join(dir, 'big.bin');
    await writeFile(local, content);
    t.deepEqual(await client.upload(local, at('big.bin')), { bytes: content.length, resumedFrom: 0 });
    t.deepEqual(await client.upload(Buffer.from('small text\n'), at('small.txt')), { bytes: 11, resumedFrom: 0 });
    await client.mkdir(at('sub'));
    sameBytes(t, await readFile(disk('big.bin')), content, 'uploaded big.bin on disk');
    t.is(await readFile(disk('small.txt'), 'utf8'), 'small text\n');

    // List.
    const entries = await client.list(top);
    t.deepEqual(
      entries.map((e) => [e.name, e.type, e.type === 'file' ? e.size : 0]).sort(),
      [
        ['big.bin', 'file', content.length],
        ['small.txt', 'file', 11],
        ['sub', 'directory', 0],
      ],
    );
    t.deepEqual(await client.list(at('sub')), []);
    t.is(await client.size(at('big.bin')), content.length);

    // Download: to a path and into a Writable, byte-exact.
    t.deepEqual(await client.download(at('big.bin'), join(dir, 'down.bin')), { bytes: content.length, resumedFrom: 0 });
    sameBytes(t, await readFile(join(dir, 'down.bin')), content, 'downloaded big.bin');
    const sink = collector();
    await client.download(at('small.txt'), sink);
    t.is(sink.bytes().toString(), 'small text\n');

    // Resumed download: cut the connection after 1 MiB, keep the part, continue with REST + RETR.
    const target = join(dir, 'resumed.bin');
    const cutter = await connectTo(t, srv);
    let cut = false;
    await rejectsWith(
      t,
      cutter.download(at('big.bin'), target, {
        resume: true,
        onProgress: (p) => {
          if (!cut && p.bytes > 1024 * 1024) {
            cut = true;
            cutter.close();
          }
        },
      }),
      ConnectionError,
      'interrupted download',
    );
    const part = join(dir, '.resumed.bin.dfos-part');
    const partSize = (await stat(part)).size;
    t.true(partSize > 0 && partSize < content.length, `part of ${partSize} bytes kept`);
    t.deepEqual(await client.download(at('big.bin'), target, { resume: true }), { bytes: content.length - partSize, resumedFrom: partSize });
    sameBytes(t, await readFile(target), content, 'resumed download');
    t.false(existsSync(part));

    // Resumed upload: APPE from the remote size; a fresh name starts at 0.
    await client.upload(content.subarray(0, 1_000_000), at('appended.bin'));
    t.deepEqual(await client.upload(content, at('appended.bin'), { resume: true }), { bytes: content.length - 1_000_000, resumedFrom: 1_000_000 });
    sameBytes(t, await readFile(disk('appended.bin')), content, 'resumed upload');
    t.deepEqual(await client.upload(Buffer.from('fresh'), at('fresh.txt'), { resume: true }), { bytes: 5, resumedFrom: 0 });

    // Rename (into a subdirectory) and delete.
    await client.rename(at('big.bin'), at('sub/moved.bin'));
    t.false(existsSync(disk('big.bin')));
    t.deepEqual((await client.list(at('sub'))).map((e) => [e.name, e.size]), [['moved.bin', content.length]]);
    await client.delete(at('sub/moved.bin'));
    t.deepEqual(await readdir(disk('sub')), []);
    await client.removeDir(at('sub'));
    t.false(existsSync(disk('sub')));

    // A missing path is NotFoundError from every path method (the servers' 550 texts differ).
    const missing = at('missing.bin');
    const notFound: [string, () => Promise<unknown>][] = [
      ['download to a path', () => client.download(missing, join(dir, 'missing.bin'))],
      ['download to a path with resume', () => client.download(missing, join(dir, 'missing.bin'), { resume: true })],
      ['download to a Writable', () => client.download(missing, collector())],
      ['size', () => client.size(missing)],
      ['delete', () => client.delete(missing)],
      ['rename', () => client.rename(missing, at('other.bin'))],
      ['removeDir', () => client.removeDir(missing)],
      ['list', () => client.list(missing)],
    ];
    for (const [what, call] of notFound) {
      const err = await rejectsWith(t, call(), NotFoundError, `${what} of a missing path`);
      t.true(err.message.includes(missing), err.message);
    }
    t.false(existsSync(join(dir, 'missing.bin')), 'a failed download leaves no local file');
    t.deepEqual((await readdir(dir)).filter((n) => n.includes('dfos-part')), []);

    // An existing path the server refuses to send is PermissionError, not NotFoundError.
    const refusedDir = await rejectsWith(t, client.download(top, join(dir, 'dir.bin')), PermissionError, 'download of a directory');
    t.is(refusedDir.code, 550);
    if (srv.dropsPrivileges) {
      await client.upload(Buffer.from('secret'), at('secret.txt'));
      await chmod(disk('secret.txt'), 0o000);
      await rejectsWith(t, client.download(at('secret.txt'), join(dir, 'secret.txt')), PermissionError, 'download of an unreadable file');
    }

    // view: SITE VIEW is DFOS's; another server's refusal is a clear UnsupportedError (a ProtocolError).
    const unsupported = await rejectsWith(t, client.view(at('small.txt')), UnsupportedError, 'view');
    t.true(unsupported instanceof ProtocolError);
    t.regex(unsupported.message, /this server has no SITE VIEW/);
    t.is(unsupported.code, 500);
    t.is(unsupported.command, `SITE VIEW ${at('small.txt')}`);

    // The session is still usable after all those failures.
    t.is(await client.size(at('small.txt')), 11);
  });

  test(`dfos CLI against ${name}: put, ls, get, rm with exit codes; view fails in one line`, async (t) => {
    if (!existsSync(CLI)) throw new Error('dist/dfos.cjs is missing; run `npx tsc -p tsconfig.json` first');
    const srv = await peer(name);
    const dir = await tempDir(t, 'dfos-peer-cli-');
    const env = { DFOS_URL: `ftp://${srv.user}@${srv.host}:${srv.port}/`, DFOS_PASSWORD: srv.password };
    const run = (...args: string[]) => runCli(CLI, args, { env, cwd: dir });
    const oneLine = (r: CliRun, what: string) => {
      const lines = r.stderr.split('\n').filter((l) => l !== '');
      t.is(lines.length, 1, `${what}: stderr ${JSON.stringify(r.stderr)}`);
      t.true(lines[0]?.startsWith('dfos: '), r.stderr);
      return lines[0] ?? '';
    };
    const name1 = `cli-${randomBytes(3).toString('hex')}.bin`;
    const content = randomBytes(300_000);
    await writeFile(join(dir, name1), content);

    let r = await run('put', name1);
    t.is(r.code, 0, r.stderr);
    t.is(r.stderr, '');
    sameBytes(t, await readFile(join(srv.root, name1)), content, 'put');

    r = await run('ls', '--json');
    t.is(r.code, 0, r.stderr);
    const listed = (JSON.parse(r.stdout.toString()) as { name: string; type: string; size: number }[]).find((e) => e.name === name1);
    t.deepEqual(listed && [listed.type, listed.size], ['file', content.length]);
    r = await run('ls');
    t.is(r.code, 0, r.stderr);
    t.true(r.stdout.toString().includes(name1));

    r = await run('get', name1, 'copy.bin');
    t.is(r.code, 0, r.stderr);
    sameBytes(t, await readFile(join(dir, 'copy.bin')), content, 'get');

    r = await run('get', 'no-such-file.bin');
    t.is(r.code, 1);
    t.regex(oneLine(r, 'get of a missing file'), /no-such-file\.bin/);
    t.false(existsSync(join(dir, 'no-such-file.bin')));

    r = await run('view', name1);
    t.is(r.code, 1);
    t.is(r.stdout.length, 0);
    t.regex(oneLine(r, 'view'), /^dfos: view .* failed: this server has no SITE VIEW/);

    r = await run('rm', name1);
    t.is(r.code, 0, r.stderr);
    t.false(existsSync(join(srv.root, name1)));
    r = await run('rm', name1);
    t.is(r.code, 1);
    oneLine(r, 'rm of a missing file');
  });
}

test('550 texts: which say "missing", which give another reason, which need a look at the path', (t) => {
  const cases: [string, 'not-found' | 'refused' | 'unknown'][] = [
    // DFOS's own replies.
    ['/r/q1.csv: No such file or directory', 'not-found'],
    ['/r/q1.csv: Permission denied (read-only account)', 'refused'],
    ['/r/q1.csv: Permission denied', 'refused'],
    ['/docs: Already exists', 'refused'],
    ['/docs: Is a directory (use RMD)', 'refused'],
    ['/a.txt/b: Not a directory', 'refused'],
    ['/dev: Not a regular file', 'refused'],
    ['/docs: Directory not empty', 'refused'],
    ['/: Cannot remove the home directory', 'refused'],
    ['/loop: Too many levels of symbolic links', 'refused'],
    // pyftpdlib.
    ['No such file or directory.', 'not-found'],
    ['File exists.', 'refused'],
    ['Is a directory.', 'refused'],
    ['/missing.bin is not retrievable.', 'unknown'],
    // vsftpd: the same text for a missing path and a refusal.
    ['Failed to open file.', 'unknown'],
    ['Could not get file size.', 'unknown'],
    ['Delete operation failed.', 'unknown'],
    ['RNFR command failed.', 'unknown'],
    ['Create directory operation failed.', 'unknown'],
    // Others.
    ['The system cannot find the file specified.', 'not-found'],
    ['File not found', 'not-found'],
    ["Can't find the file", 'not-found'],
    ['Access is denied.', 'refused'],
    ['Operation not permitted', 'refused'],
  ];
  for (const [text, kind] of cases) t.is(classify550(text), kind, text);

  // toDfosError maps by the text alone: only "missing" texts are NotFoundError; the rest stay
  // PermissionError (DfosClient then looks at the path for the "unknown" ones).
  const op = { action: 'download', path: '/r/q1.csv', command: 'RETR /r/q1.csv' };
  for (const [text, kind] of cases) {
    const err = toDfosError(new FTPError({ code: 550, message: `550 ${text}` }), op);
    t.is(err.name, kind === 'not-found' ? 'NotFoundError' : 'PermissionError', text);
    t.is(err.code, 550);
  }
  // pyftpdlib's MLSD of a missing directory is a 501 that says so.
  t.true(toDfosError(new FTPError({ code: 501, message: '501 No such directory.' }), op) instanceof NotFoundError);
  t.true(toDfosError(new FTPError({ code: 501, message: '501 Invalid argument' }), op) instanceof ProtocolError);
});
