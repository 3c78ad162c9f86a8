import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

/**
 * A real single-node Ceph cluster (monitor, memstore OSD, manager, radosgw) on loopback
 * for the S3 backend's tests, booted by deploy/ceph-rgw.sh on free ports in a
 * temporary directory. One per test file: ava runs each file in its own process.
 */

const run = promisify(execFile);
const RECIPE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'deploy', 'ceph-rgw.sh');
/** Debian's packages that bring every program the recipe runs. */
export const CEPH_PACKAGES = 'ceph-mon ceph-osd ceph-mgr radosgw ceph-common uuid-runtime curl';
const PROGRAMS = ['ceph-mon', 'ceph-osd', 'ceph-mgr', 'radosgw', 'ceph', 'ceph-authtool', 'monmaptool', 'radosgw-admin', 'uuidgen', 'curl'];

/** A running cluster. */
export interface CephRgw {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** An SDK client for checks behind the backend's back. */
  client: S3Client;
  /** Creates a bucket (once per test file). */
  createBucket(name: string): Promise<void>;
  /** Stops the daemons by PID and removes the state directory. */
  stop(): Promise<void>;
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Throws, naming the packages to install, when a program the recipe needs is missing. */
async function requirePrograms(): Promise<void> {
  const missing: string[] = [];
  for (const program of PROGRAMS) {
    try {
      await run('sh', ['-c', `command -v ${program}`]);
    } catch {
      missing.push(program);
    }
  }
  if (missing.length > 0) {
    throw new Error(
      `Ceph is needed for the S3 backend tests but ${missing.join(', ')} is missing: apt-get install -y --no-install-recommends ${CEPH_PACKAGES}`,
    );
  }
}

/** Boots the cluster (15-40 s) and returns its S3 settings. */
export async function startCephRgw(): Promise<CephRgw> {
  await requirePrograms();
  const dir = await mkdtemp(join(tmpdir(), 'dfos-ceph-'));
  const state = join(dir, 'ceph');
  const rgwPort = await freePort();
  let monPort = await freePort();
  while (monPort === rgwPort) monPort = await freePort();
  const stop = async (): Promise<void> => {
    await run('bash', [RECIPE, 'stop', state], { timeout: 60_000 }).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  let stdout: string;
  try {
    ({ stdout } = await run('bash', [RECIPE, 'start', state, String(rgwPort), String(monPort)], {
      timeout: 180_000,
    }));
  } catch (err) {
    await stop();
    throw new Error(`Ceph RGW did not start: ${(err as Error).message}`, { cause: err });
  }
  const settings = new Map<string, string>();
  for (const match of stdout.matchAll(/(\w+)=(\S+)/g)) settings.set(match[1] ?? '', match[2] ?? '');
  const endpoint = settings.get('DFOS_S3_ENDPOINT') ?? `http://127.0.0.1:${rgwPort}`;
  const accessKeyId = settings.get('AWS_ACCESS_KEY_ID') ?? '';
  const secretAccessKey = settings.get('AWS_SECRET_ACCESS_KEY') ?? '';
  const client = new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async stop() {
      client.destroy();
      await stop();
    },
  };
}
