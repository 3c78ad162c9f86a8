import { readFile } from 'node:fs/promises';
import test from 'ava';
import { allocatorEnv, GLIBC_MMAP_THRESHOLD, JEMALLOC_CONF } from '../src/server/allocator.cjs';
import { runProgram } from './helpers/protocolFixtures.js';
import { CLI, cleanEnv, spawnServer, stripAnsi } from './helpers/serverProcess.js';

/** The memory allocator: jemalloc when installed (it returns freed memory after load), else glibc with a fixed mmap threshold. */

const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
const only = (path: string) => (p: string) => p === path;

test('allocatorEnv: jemalloc when installed, with its purging settings; the operator\'s own settings and DFOS_ALLOCATOR=system are kept', (t) => {
  t.deepEqual(allocatorEnv({}, only(JEMALLOC)), { add: { LD_PRELOAD: JEMALLOC, MALLOC_CONF: JEMALLOC_CONF } });
  t.deepEqual(allocatorEnv({ MALLOC_CONF: 'narenas:1' }, only(JEMALLOC)), { add: { LD_PRELOAD: JEMALLOC } }, 'own MALLOC_CONF kept');
  t.deepEqual(allocatorEnv({ LD_PRELOAD: '/opt/libfoo.so' }, only(JEMALLOC)), { add: { LD_PRELOAD: `${JEMALLOC}:/opt/libfoo.so`, MALLOC_CONF: JEMALLOC_CONF } });
  t.deepEqual(allocatorEnv({ LD_PRELOAD: '/opt/libjemalloc.so.2' }, only(JEMALLOC)), { add: {} }, 'already preloaded by the operator');
  t.deepEqual(allocatorEnv({ DFOS_ALLOCATOR: 'system' }, only(JEMALLOC)), { add: {} });
  t.deepEqual(allocatorEnv({}, () => false), { add: { MALLOC_MMAP_THRESHOLD_: GLIBC_MMAP_THRESHOLD } }, 'auto without jemalloc: glibc with a fixed mmap threshold, no error');
  t.is(GLIBC_MMAP_THRESHOLD, '131072');
  t.deepEqual(allocatorEnv({ MALLOC_MMAP_THRESHOLD_: '65536' }, () => false), { add: {} }, "the operator's own threshold kept");
  t.deepEqual(allocatorEnv({ GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=262144' }, () => false), { add: {} }, "the operator's own tunable kept");
  t.deepEqual(allocatorEnv({ DFOS_ALLOCATOR: 'system' }, () => false), { add: {} }, 'system: glibc as it comes');
  t.deepEqual(allocatorEnv({ DFOS_ALLOCATOR: 'jemalloc' }, only('/usr/lib64/libjemalloc.so.2')), { add: { LD_PRELOAD: '/usr/lib64/libjemalloc.so.2', MALLOC_CONF: JEMALLOC_CONF } });
  const missing = allocatorEnv({ DFOS_ALLOCATOR: 'jemalloc' }, () => false);
  t.regex('error' in missing ? missing.error : '', /^DFOS_ALLOCATOR=jemalloc: libjemalloc\.so\.2 not found .*apt-get install libjemalloc2.*DFOS_ALLOCATOR=system$/);
  const unknown = allocatorEnv({ DFOS_ALLOCATOR: 'tcmalloc' }, only(JEMALLOC));
  t.regex('error' in unknown ? unknown.error : '', /^DFOS_ALLOCATOR=tcmalloc is not an allocator: use auto .*, jemalloc or system$/);
});

/** Whether a running process has jemalloc mapped. */
async function runsOnJemalloc(pid: number): Promise<boolean> {
  return (await readFile(`/proc/${pid}/maps`, 'utf8')).includes('libjemalloc.so');
}

test('dfos serve: workers run on jemalloc; a single process too where Node can replace itself (process.execve); DFOS_ALLOCATOR=system keeps glibc', async (t) => {
  t.timeout(60_000);
  t.true('add' in allocatorEnv({ DFOS_ALLOCATOR: 'jemalloc' }), 'jemalloc is installed (.ci/run installs libjemalloc2)');

  const two = await spawnServer({ args: ['--workers', '2'] });
  t.teardown(() => two.cleanup());
  const workerPids = [...stripAnsi(two.stdout()).matchAll(/Worker listening\b.*\bpid=(\d+)/g)].map((m) => Number(m[1]));
  t.is(workerPids.length, 2);
  for (const pid of workerPids) t.true(await runsOnJemalloc(pid), `worker ${pid} runs on jemalloc`);

  const single = await spawnServer({ args: ['--workers', '1'] });
  t.teardown(() => single.cleanup());
  const canReplace = typeof (process as { execve?: unknown }).execve === 'function';
  t.is(await runsOnJemalloc(single.child.pid!), canReplace, canReplace ? 'replaced itself under jemalloc (same PID)' : 'Node 20 has no process.execve: glibc');

  const system = await spawnServer({ args: ['--workers', '2'], env: { DFOS_ALLOCATOR: 'system' } });
  t.teardown(() => system.cleanup());
  for (const m of stripAnsi(system.stdout()).matchAll(/Worker listening\b.*\bpid=(\d+)/g)) t.false(await runsOnJemalloc(Number(m[1])));
  t.false(await runsOnJemalloc(system.child.pid!));
});

test('dfos serve with an unknown DFOS_ALLOCATOR: exit 2 and one line naming the variable and the choices', async (t) => {
  const r = await runProgram(process.execPath, [CLI, 'serve'], { env: cleanEnv({ DFOS_ALLOCATOR: 'tcmalloc' }) as Record<string, string>, timeoutMs: 15_000 });
  t.is(r.code, 2);
  t.deepEqual(r.stderr.trim().split('\n'), ['dfos: DFOS_ALLOCATOR=tcmalloc is not an allocator: use auto (jemalloc when installed, the default), jemalloc or system']);
});
