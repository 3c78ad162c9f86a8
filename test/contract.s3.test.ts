import test from 'ava';
import { randomBytes } from 'node:crypto';
import { GetObjectCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { parseS3Url } from '../src/storage/S3Backend.js';
import { startCephRgw, type CephRgw } from './helpers/ceph.js';
import { storageContract } from './helpers/storageContract.js';
import type { TestServer } from './helpers/testServer.js';

/**
 * The storage contract (test/helpers/storageContract.ts) on S3: a real single-node Ceph
 * cluster with the RGW S3 API on loopback, booted once for this file. Each server gets its
 * own key prefix, so the tests run side by side without seeing each other's objects (a
 * server's start aborts unfinished uploads under its prefix only).
 */

const BUCKET = 'dfos-contract';
let ceph: CephRgw;

test.before(async () => {
  ceph = await startCephRgw();
  process.env.AWS_ACCESS_KEY_ID = ceph.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = ceph.secretAccessKey;
  process.env.AWS_REGION = 'us-east-1';
  await ceph.createBucket(BUCKET);
});

test.after.always(async () => {
  await ceph?.stop();
});

/** The key prefix a test server stores under. */
function prefixOf(srv: TestServer): string {
  return parseS3Url(srv.server.config.storage).prefix;
}

storageContract(test, 'S3 (Ceph RGW)', {
  config: async () => ({ storage: `s3://${BUCKET}/t-${randomBytes(6).toString('hex')}`, s3Endpoint: ceph.endpoint }),
  capabilities: { atomicReplace: true, resume: false, append: false, chmod: false, renameDirectory: false },
  async stored(srv, user, path) {
    try {
      const object = await ceph.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${prefixOf(srv)}/${user}${path}` }));
      return Buffer.from(await object.Body!.transformToByteArray());
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
      throw err;
    }
  },
  async leftovers(srv) {
    const page = await ceph.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${prefixOf(srv)}/` }));
    return (page.Uploads ?? []).map((u) => u.Key ?? '?');
  },
});
