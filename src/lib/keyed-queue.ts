/**
 * One serial queue per key: work for a key runs after everything queued before it for the same key
 * (never interleaved), while different keys run independently. A failure rejects only the promise
 * of the work that failed; the key's queue goes on either way. A key is forgotten once its queue
 * is empty, so idle keys cost nothing.
 */
export class KeyedQueue<K = string> {
  readonly #tails = new Map<K, Promise<void>>();

  /** Runs `fn` after the work queued for `key`; resolves or rejects as `fn` does. */
  run<T>(key: K, fn: () => Promise<T>): Promise<T> {
    const run = (this.#tails.get(key) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => {},
      () => {},
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return run;
  }

  /** Whether work is queued or running for `key`. */
  busy(key: K): boolean {
    return this.#tails.has(key);
  }

  /** Resolves once no key has work queued, including work queued while waiting. */
  async idle(): Promise<void> {
    while (this.#tails.size) await Promise.all([...this.#tails.values()]);
  }
}
