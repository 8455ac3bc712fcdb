/**
 * Run `fn` over `items` with at most `n` calls in flight. After the first
 * failure no new item is started; the calls in flight finish, then the first
 * error is thrown.
 */
export async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== undefined) throw failed;
}

/** pool, keeping each call's result at its item's index (the order of `items`, whatever order they finish in). */
export async function mapPool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  const indexed = items.map((item, i) => ({ item, i }));
  await pool(indexed, n, async ({ item, i }) => {
    out[i] = await fn(item);
  });
  return out;
}
