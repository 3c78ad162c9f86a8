/**
 * Single-stream throughput of the S3 backend against a real local Ceph RGW (booted here
 * with test/helpers/ceph-rgw.sh, stopped at the end): one upload through a WriteSink and
 * one download through a ReadHandle of the same object, checked byte-exact by SHA-256.
 * Run: `npx tsx bench/s3.ts [sizeMiB] [partMiB] [queueSize]` (defaults 256, 8, 4).
 * Needs the Ceph packages (see .ci/run); everything stays on 127.0.0.1.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { S3Backend } from '../src/storage/S3Backend.js';
import { startCephRgw } from '../test/helpers/ceph.js';

const sizeMiB = Number(process.argv[2] ?? 256);
const partMiB = Number(process.argv[3] ?? 8);
const queueSize = Number(process.argv[4] ?? 4);
const MIB = 1024 * 1024;

const ceph = await startCephRgw();
try {
  await ceph.createBucket('bench');
  const backend = new S3Backend({
    bucket: 'bench',
    prefix: 'b',
    endpoint: ceph.endpoint,
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
    partSizeBytes: partMiB * MIB,
    queueSize,
  });
  await backend.start();
  const home = await backend.openHome('bench');

  // A repeating 1 MiB pattern: no disk in the way, cheap to generate.
  const block = Buffer.alloc(MIB);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 0xff;
  const upHash = createHash('sha256');
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 50);

  let start = process.hrtime.bigint();
  const sink = await home.openWrite('/big.bin');
  for (let i = 0; i < sizeMiB; i++) {
    upHash.update(block);
    if (!sink.stream.write(block)) await once(sink.stream, 'drain');
  }
  sink.stream.end();
  await once(sink.stream, 'finish');
  await sink.commit();
  const upSeconds = Number(process.hrtime.bigint() - start) / 1e9;

  start = process.hrtime.bigint();
  const handle = await home.openRead('/big.bin');
  const downHash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of handle.stream()) {
    downHash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  await handle.close();
  const downSeconds = Number(process.hrtime.bigint() - start) / 1e9;
  clearInterval(sampler);

  const same = upHash.digest('hex') === downHash.digest('hex') && bytes === sizeMiB * MIB;
  console.log(
    JSON.stringify({
      sizeMiB,
      partMiB,
      queueSize,
      uploadMBps: Number((sizeMiB / upSeconds).toFixed(1)),
      downloadMBps: Number((sizeMiB / downSeconds).toFixed(1)),
      uploadSeconds: Number(upSeconds.toFixed(2)),
      downloadSeconds: Number(downSeconds.toFixed(2)),
      rssGrowthMiB: Math.round((rssPeak - rssBefore) / MIB),
      byteExact: same,
    }),
  );
  await backend.close();
  if (!same) process.exitCode = 1;
} finally {
  await ceph.stop();
}
