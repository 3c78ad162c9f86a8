import { lstat, readdir, readFile, readlink, realpath } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import type { Client } from 'basic-ftp';
import type { RawFtp } from './rawFtp.js';
import type { TestServer } from './testServer.js';

/**
 * Helpers for the jail, read-only, reply and SITE VIEW tests: record every byte a
 * client receives on its control connection, check that none of it names a server
 * path, and snapshot a directory tree to prove that nothing on disk changed. Raw
 * data-connection commands (RETR, LIST, STOR…) are in dataTransfer.ts.
 */

/** Everything the control connections of one test received, as text. */
export class ReplyRecorder {
  readonly chunks: string[] = [];

  /** Records every control-connection byte a RawFtp or a basic-ftp Client receives from now on. */
  watch<T extends RawFtp | Client>(target: T): T {
    const socket: Socket = 'ftp' in target ? target.ftp.socket : target.socket;
    socket.on('data', (d: Buffer | string) => this.chunks.push(typeof d === 'string' ? d : d.toString('utf8')));
    return target;
  }

  /** All received text joined. */
  get text(): string {
    return this.chunks.join('');
  }
}

/** Server-side directories that must never appear in a reply (as given and as real paths). */
export async function serverPaths(srv: TestServer): Promise<string[]> {
  const paths = new Set<string>();
  for (const p of [srv.dir, srv.storage, srv.logDir, tmpdir()]) {
    paths.add(p);
    try {
      paths.add(await realpath(p));
    } catch {
      // not created (yet)
    }
  }
  return [...paths].filter((p) => p.length > 1);
}

/** Fails the test if any recorded reply text contains a server-side path. */
export async function assertNoServerPaths(t: ExecutionContext, srv: TestServer, recorder: ReplyRecorder): Promise<void> {
  const text = recorder.text;
  t.true(text.length > 0, 'no reply was recorded');
  for (const p of await serverPaths(srv)) {
    const at = text.indexOf(p);
    t.is(at, -1, `a reply contains the server path ${p}: ${JSON.stringify(text.slice(Math.max(0, at - 80), at + 120))}`);
  }
}

/**
 * A description of every entry under `dir` (not following symlinks): type, permission
 * bits, and file content or link target. Equal snapshots mean nothing changed.
 */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const relPath = rel ? `${rel}/${name}` : name;
      const full = join(dir, relPath);
      const st = await lstat(full);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[relPath] = `link -> ${await readlink(full)}`;
      else if (st.isDirectory()) {
        out[relPath] = `dir ${mode}`;
        await walk(relPath);
      } else out[relPath] = `file ${mode} ${(await readFile(full)).toString('base64')}`;
    }
  };
  await walk('');
  return out;
}

/** True if `path` exists (a dangling symlink counts as existing). */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

