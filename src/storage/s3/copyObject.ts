import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  UploadPartCopyCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

/** S3's limit for a single CopyObject (5 GiB). */
export const SINGLE_COPY_LIMIT = 5 * 1024 ** 3;

/** Where a server-side copy goes and how it is split. */
export interface CopyOptions {
  client: S3Client;
  bucket: string;
  from: string;
  to: string;
  /** The source's size in bytes. */
  size: number;
  /** The source's ETag: the copy fails (412) if the source changes meanwhile. */
  etag?: string;
  /** Above this size the copy uses UploadPartCopy (default 5 GiB, S3's CopyObject limit). */
  singleCopyLimit?: number;
  /** Bytes per copied part (default 512 MiB; at least 5 MiB except the last). */
  copyPartBytes?: number;
}

/** The x-amz-copy-source value: bucket/key with each key segment URL-encoded. */
export function copySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

/**
 * Copies an object inside the bucket without moving its bytes through this process:
 * CopyObject up to 5 GiB, a multipart upload of UploadPartCopy ranges above (aborted if
 * any part fails, so nothing is left behind).
 */
export async function copyObject(options: CopyOptions): Promise<void> {
  const { client, bucket, from, to, size, etag } = options;
  const source = copySource(bucket, from);
  const limit = options.singleCopyLimit ?? SINGLE_COPY_LIMIT;
  if (size <= limit) {
    await client.send(
      new CopyObjectCommand({ Bucket: bucket, Key: to, CopySource: source, CopySourceIfMatch: etag }),
    );
    return;
  }
  const partBytes = options.copyPartBytes ?? 512 * 1024 ** 2;
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: to }));
  try {
    const parts: { PartNumber: number; ETag: string }[] = [];
    for (let start = 0, part = 1; start < size; start += partBytes, part += 1) {
      const end = Math.min(size, start + partBytes) - 1;
      const answer = await client.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: to,
          UploadId,
          PartNumber: part,
          CopySource: source,
          CopySourceIfMatch: etag,
          CopySourceRange: `bytes=${start}-${end}`,
        }),
      );
      parts.push({ PartNumber: part, ETag: answer.CopyPartResult?.ETag ?? '' });
    }
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId, MultipartUpload: { Parts: parts } }),
    );
  } catch (err) {
    await client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: to, UploadId }))
      .catch(() => undefined);
    throw err;
  }
}
