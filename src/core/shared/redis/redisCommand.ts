import { Redis } from 'ioredis';

/** Longest wait for the connection and for each reply of a one-off command (the CLI). */
const TIMEOUT_MS = 3000;

/**
 * Connects to `url`, runs `work`, and closes: for one-off commands such as `dfos bans
 * lift --redis`. Never retries or queues; rejects with the connection or command error
 * (ECONNREFUSED, WRONGPASS, a timeout) within a few seconds.
 */
export async function withRedis<T>(url: string, work: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: TIMEOUT_MS,
    commandTimeout: TIMEOUT_MS,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let failure: Error | undefined;
  client.on('error', (err: Error) => {
    failure ??= err;
  });
  try {
    await client.connect().catch((err: unknown) => {
      throw failure ?? err;
    });
    return await work(client);
  } finally {
    client.disconnect();
  }
}
