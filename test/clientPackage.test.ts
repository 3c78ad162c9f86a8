import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './helpers/serverProcess.js';
import { tempDir } from './helpers/clientFixtures.js';
import { startTestServer } from './helpers/testServer.js';

const run = promisify(execFile);
const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

test.before(() => {
  if (!existsSync(join(REPO_ROOT, 'dist', 'client', 'index.js')) || !existsSync(join(REPO_ROOT, 'dist', 'client', 'index.d.ts'))) {
    throw new Error('dist/client is missing; run `npx tsc -p tsconfig.json` first');
  }
});

/**
 * A consumer written against the published types: every call typed, the error classes
 * usable with instanceof, and misuse rejected by the compiler (@ts-expect-error fails the
 * build if the line is NOT an error).
 */
const CONSUMER_TS = `
import { Writable } from 'node:stream';
import {
  DfosClient, DfosError, NotFoundError, AuthError, PermissionError, QuotaError, ConnectionError, ProtocolError, LocalError,
  type RemoteEntry, type ProgressEvent, type TransferResult, type RemotePreview,
} from 'dfos/client';

const [host, port] = [process.argv[2]!, Number(process.argv[3])];
const events: ProgressEvent[] = [];
{
  await using client = await DfosClient.connect({ host, port, user: 'alice', password: 'alice-pw', timeoutMs: 10_000 });
  const up: TransferResult = await client.upload(Buffer.from('typed hello\\n'), 'typed.txt', { onProgress: (e) => events.push(e) });
  const entries: RemoteEntry[] = await client.list();
  const first: 'file' | 'directory' | 'symlink' | 'unknown' = entries[0]!.type;
  const when: Date = entries[0]!.modifiedAt;
  const bytes: Buffer = await client.view('typed.txt');
  const preview: RemotePreview = await client.preview('typed.txt');
  const size: number = await client.size('typed.txt');
  let code: number | undefined;
  try {
    await client.download('missing.txt', new Writable({ write: (_c, _e, cb) => cb() }));
  } catch (err) {
    if (err instanceof NotFoundError && err instanceof DfosError) code = err.code;
  }
  const misuse = () =>
    // @ts-expect-error resume needs a local path, not a stream
    client.download('x', new Writable(), { resume: true });
  // @ts-expect-error size() is a number
  const wrong: string = size;
  void [misuse, wrong, first, when, AuthError, PermissionError, QuotaError, ConnectionError, ProtocolError, LocalError];
  console.log(JSON.stringify({ up, names: entries.map((e) => e.name), text: bytes.toString(), fileSize: preview.fileSize, size, code, last: events.at(-1) }));
}
`;

/** Type-checks and compiles the consumer in `project` with the repo's TypeScript, then runs it against `srv`. */
async function checkConsumer(project: string, srv: { host: string; port: number }): Promise<Record<string, unknown>> {
  await writeFile(join(project, 'consumer.ts'), CONSUMER_TS);
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        lib: ['ES2022'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: false,
        outDir: 'out',
        typeRoots: [join(REPO_ROOT, 'node_modules', '@types')],
        types: ['node'],
      },
      files: ['consumer.ts'],
    }),
  );
  await run(process.execPath, [TSC, '-p', project], { cwd: project }).catch((err: { stdout?: string; message: string }) => {
    throw new Error(`tsc failed in the consumer project: ${err.stdout || err.message}`);
  });
  const { stdout } = await run(process.execPath, [join(project, 'out', 'consumer.js'), srv.host, String(srv.port)], {
    cwd: project,
    timeout: 30_000,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

const EXPECTED = {
  up: { bytes: 12, resumedFrom: 0 },
  names: ['typed.txt'],
  text: 'typed hello\n',
  fileSize: 12,
  size: 12,
  code: 550,
  last: { bytes: 12, totalBytes: 12 },
};

test('exports map: another project resolves dfos/client (node_modules symlink), type-checks against dist types and runs', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const project = await tempDir(t, 'dfos-consumer-');
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await mkdir(join(project, 'node_modules'));
  await symlink(REPO_ROOT, join(project, 'node_modules', 'dfos'), 'dir');

  const probe = `
    const client = await import('dfos/client');
    const root = await import('dfos');
    let deep = 'resolved';
    try { await import('dfos/dist/cli.js'); } catch (err) { deep = err.code; }
    console.log(JSON.stringify({ client: Object.keys(client).sort(), same: root.DfosClient === client.DfosClient, deep }));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', probe], { cwd: project });
  t.deepEqual(JSON.parse(stdout), {
    client: ['AuthError', 'ConnectionError', 'DfosClient', 'DfosError', 'LocalError', 'NotFoundError', 'PermissionError', 'ProtocolError', 'QuotaError', 'TlsVerificationError', 'UnsupportedError'],
    same: true,
    deep: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
  });
  t.deepEqual(await checkConsumer(project, srv), EXPECTED);
});

/**
 * The consumer's package-lock.json: dfos from the packed tarball plus the repo's own
 * locked runtime dependencies (every non-dev entry of package-lock.json). With a complete
 * lock, `npm ci --offline` needs only tarballs, which the repo's own `npm ci` put in the
 * npm cache; `npm install --offline` would also need registry metadata, which a fresh
 * machine does not have cached. npm ci refuses a lock that misses a dependency the packed
 * package.json declares, so the check stays real.
 */
async function consumerLock(tarballRef: string, packed: { version: string; dependencies?: Record<string, string>; engines?: unknown; bin?: unknown }) {
  const repoLock = JSON.parse(await readFile(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  const runtime = Object.entries(repoLock.packages).filter(([path, entry]) => path !== '' && !entry.dev);
  return {
    name: 'consumer',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'consumer', dependencies: { dfos: tarballRef } },
      'node_modules/dfos': {
        version: packed.version,
        resolved: tarballRef,
        dependencies: packed.dependencies,
        bin: packed.bin,
        engines: packed.engines,
      },
      ...Object.fromEntries(runtime),
    },
  };
}

test('npm pack + npm ci --offline into another project: dfos/client works with full types', async (t) => {
  const srv = await startTestServer();
  t.teardown(() => srv.stop());
  const work = await tempDir(t, 'dfos-pack-');
  const project = join(work, 'project');
  await mkdir(project);
  // --ignore-scripts: pack the dist/ that `npm test` built, and install without lifecycle scripts.
  await run('npm', ['pack', REPO_ROOT, '--pack-destination', work, '--ignore-scripts', '--silent'], { cwd: work, timeout: 60_000 });
  const tgz = (await readdir(work)).find((f) => f.endsWith('.tgz'));
  t.truthy(tgz, 'npm pack made a tarball');
  const { stdout: packedJson } = await run('tar', ['-xzOf', join(work, tgz!), 'package/package.json']);
  const packed = JSON.parse(packedJson) as { version: string; dependencies?: Record<string, string> };
  t.truthy(packed.dependencies?.['basic-ftp'], 'the packed package.json declares basic-ftp');
  const tarballRef = `file:../${tgz!}`;
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { dfos: tarballRef } }));
  await writeFile(join(project, 'package-lock.json'), JSON.stringify(await consumerLock(tarballRef, packed), null, 2));
  await run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], {
    cwd: project,
    timeout: 120_000,
  }).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`npm ci --offline failed in the consumer project (is the npm cache populated by the repo's own npm ci?): ${err.stderr || err.message}`);
  });
  t.true(existsSync(join(project, 'node_modules', 'dfos', 'dist', 'client', 'index.d.ts')), 'types ship in the tarball');
  t.false(existsSync(join(project, 'node_modules', 'dfos', 'src')), 'sources do not ship');
  t.true(existsSync(join(project, 'node_modules', 'basic-ftp')), 'basic-ftp is a runtime dependency');
  t.true(existsSync(join(project, 'node_modules', 'cli-progress')), 'cli-progress is a runtime dependency');
  t.false(existsSync(join(project, 'node_modules', 'ava')), 'dev dependencies are not installed');
  t.deepEqual(await checkConsumer(project, srv), EXPECTED);
});
