import type { StorageUsage } from '../storage/StorageBackend.js';

/** One user's usage as kept in `<state-dir>/usage.json` (and, with --redis, in Redis). */
export interface UsageRecord extends StorageUsage {
  /** When the home was last walked (ms since the epoch). */
  measuredAt: number;
  /** When the server last changed it (ms since the epoch). */
  updatedAt: number;
}
