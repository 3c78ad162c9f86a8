/**
 * Maps `items` through `fn` with at most `limit` calls running at once, keeping the input
 * order in the result. Listings use it so a directory of 100 000 entries neither stats
 * them one by one nor floods the libuv thread pool with 100 000 requests.
 */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
