import type { QuotaStatus } from './QuotaPolicy.js';
import { formatByteSize } from '../util/byteSize.js';

/**
 * The lines that describe a user's limits and usage (SITE QUOTA, STAT, dfos quota): sizes in
 * readable units with the exact byte count, and the share used. Empty when the user has
 * no limit.
 */
export function quotaLines(status: QuotaStatus): string[] {
  const { limits, usage } = status;
  const lines: string[] = [];
  if (usage) {
    const used = `${formatByteSize(usage.bytes)} (${usage.bytes} bytes)`;
    lines.push(
      limits.quotaBytes !== undefined
        ? `Bytes: ${used} used of ${formatByteSize(limits.quotaBytes)} (${share(usage.bytes, limits.quotaBytes)})`
        : `Bytes: ${used} used, no limit`,
    );
    lines.push(limits.quotaFiles !== undefined ? `Files: ${usage.files} of ${limits.quotaFiles} (${share(usage.files, limits.quotaFiles)})` : `Files: ${usage.files}, no limit`);
  }
  if (limits.maxFileSize !== undefined) lines.push(`Largest file: ${formatByteSize(limits.maxFileSize)} (${limits.maxFileSize} bytes)`);
  return lines;
}

function share(used: number, limit: number): string {
  return `${Math.min(999, Math.floor((used / limit) * 1000) / 10)}%`;
}
