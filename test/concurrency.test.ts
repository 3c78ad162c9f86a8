import test from 'ava';
import { randomBytes, randomInt } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Client } from 'basic-ftp';
import { decodePreview, PREVIEW_LIMIT } from '../src/preview/previewFormat.js';
import { startTestServer, type TestUser } from './helpers/testServer.js';
import { download, sha256, tempsUnder } from './helpers/interop.js';

/**
 * Issue 2, point 7: many clients at once. 50 sessions across 5 users upload, list, SITE
 * VIEW, download and delete in parallel; every byte is checked and no user ever sees
 * another user's files.
 */

const USERS = 5;
const SESSIONS_PER_USER = 10;

/** All sessions wait for each other between phases; one failure releases everyone with an error. */
class Barrier {
  private arrived = 0;
  private release!: () => void;
  private abort!: (err: Error) => void;
  private readonly done: Promise<void>;

  constructor(private readonly parties: number) {
    this.done = new Promise<void>((resolve, reject) => {
      this.release = resolve;
      this.abort = reject;
    });
    this.done.catch(() => undefined);
  }

  /** Waits until every party arrived (bounded). */
  async wait(timeoutMs = 40_000): Promise<void> {
    if (++this.arrived === this.parties) this.release();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`barrier: only ${this.arrived}/${this.parties} sessions arrived within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.done, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  fail(err: Error): void {
    this.abort(err);
  }
}

/** Random content: binary for even sessions, text lines for odd ones (both SITE VIEW modes). */
function content(session: number): Buffer {
  const size = randomInt(16 * 1024, 1024 * 1024 + 1);
  if (session % 2 === 0) return randomBytes(size);
  const words = ['alpha', 'beta', 'gamma', 'delta', 'ümlaut', 'tab\there', '', '  indented', 'end.'];
  const parts: string[] = [];
  let length = 0;
  while (length < size) {
    const line = Array.from({ length: randomInt(0, 12) }, () => words[randomInt(0, words.length)]).join(' ');
    parts.push(line);
    length += Buffer.byteLength(line) + 1;
  }
  return Buffer.from(parts.join('\n')).subarray(0, size);
}

test('50 concurrent sessions across 5 users: upload, LIST, SITE VIEW, download (sha256), delete; no user sees another user\'s files', async (t) => {
  t.timeout(60_000, 'the whole concurrent run is bounded');
  const users: TestUser[] = Array.from({ length: USERS }, (_, i) => ({ name: `user${i + 1}`, password: `pw-${i + 1}-${randomBytes(4).toString('hex')}` }));
  const srv = await startTestServer({ users });
  t.teardown(() => srv.stop());
  const total = USERS * SESSIONS_PER_USER;
  const afterUpload = new Barrier(total);
  const afterChecks = new Barrier(total);
  const plan = users.flatMap((user) =>
    Array.from({ length: SESSIONS_PER_USER }, (_, i) => ({
      user,
      index: i,
      name: `${user.name}-s${i}-${randomBytes(3).toString('hex')}.${i % 2 === 0 ? 'bin' : 'txt'}`,
      data: content(i),
    })),
  );
  const namesOf = (user: string) => plan.filter((p) => p.user.name === user).map((p) => p.name).sort();
  const clients: Client[] = [];
  t.teardown(() => clients.forEach((c) => c.close()));

  const problems: string[] = [];
  const check = (ok: boolean, what: string) => {
    if (!ok) problems.push(what);
  };

  const session = async ({ user, name, data }: (typeof plan)[number]) => {
    const client = new Client(20_000);
    clients.push(client);
    try {
      await client.access({ host: srv.host, port: srv.port, user: user.name, password: user.password });
      await client.uploadFrom(Readable.from([data]), name);
      // On disk, the file is under this user's own directory, complete.
      const onDisk = await readFile(join(srv.storage, user.name, name));
      check(sha256(onDisk) === sha256(data), `${name}: stored bytes differ`);
      await afterUpload.wait();

      // Every session of this user has uploaded and none deleted yet: LIST shows exactly
      // this user's names, whatever the path used to escape.
      for (const dir of [undefined, '/', '..', '../..']) {
        const listed = (await client.list(dir)).map((e) => e.name).sort();
        check(JSON.stringify(listed) === JSON.stringify(namesOf(user.name)), `${user.name} LIST ${dir ?? ''}: ${listed.join(',')}`);
      }
      const view = await client.send(`SITE VIEW ${name}`);
      check(view.code === 200, `${name}: SITE VIEW code ${view.code}`);
      const preview = decodePreview(view.message);
      check(preview.bytes.equals(data.subarray(0, PREVIEW_LIMIT)), `${name}: SITE VIEW bytes differ from the first ${PREVIEW_LIMIT} bytes`);
      check(preview.fileSize === data.length, `${name}: SITE VIEW size ${preview.fileSize} != ${data.length}`);
      check(preview.mode === (name.endsWith('.bin') ? 'hex' : 'text'), `${name}: SITE VIEW mode ${preview.mode}`);
      const back = await download(client, name);
      check(back.length === data.length && sha256(back) === sha256(data), `${name}: downloaded bytes differ (${back.length} of ${data.length})`);
      check((await client.size(name)) === data.length, `${name}: SIZE`);
      await afterChecks.wait();

      await client.remove(name);
      // Other sessions of the same user delete concurrently: whatever is left is still only this user's.
      const left = (await client.list()).map((e) => e.name);
      check(!left.includes(name), `${name}: still listed after DELE`);
      check(left.every((n) => n.startsWith(`${user.name}-`)), `${user.name} sees ${left.join(',')}`);
      await client.send('QUIT').catch(() => undefined);
    } catch (err) {
      afterUpload.fail(err as Error);
      afterChecks.fail(err as Error);
      throw new Error(`${name}: ${(err as Error).message}`);
    } finally {
      client.close();
    }
  };

  const results = await Promise.allSettled(plan.map(session));
  const failed = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
  t.deepEqual(failed, [], 'every session completed');
  t.deepEqual(problems, [], 'every check passed');

  // Storage: one empty directory per user, nothing anywhere else, no temporaries.
  t.deepEqual((await readdir(srv.storage)).sort(), users.map((u) => u.name).sort());
  for (const u of users) t.deepEqual(await readdir(join(srv.storage, u.name)), [], `${u.name}'s directory is empty after the deletes`);
  t.deepEqual(await tempsUnder(srv.storage), []);
});
