/**
 * One copy of strings that many long-lived objects hold with the same value: every device's login identity holds
 * its project's id, every MQTT connection its filters (`attributes/response`, `command/send/+`…), each parsed
 * or sliced anew per connection (30–40 bytes of heap each, see bench/README "Memory per connection: settled, and
 * the young generation's resident part"). At most `max` values of at most `maxLength` characters are kept (a
 * longer one is returned as it is; a full table starts over), so values a client chooses can never grow it. V8
 * has no interning a program can ask for (its own internalization is for property names), hence this map.
 */
export class Interner {
  readonly #known = new Map<string, string>();

  constructor(
    private readonly max: number,
    private readonly maxLength: number,
  ) {}

  /** Values kept (at most `max`). */
  get size(): number {
    return this.#known.size;
  }

  /** A string equal to `value`: the kept copy when there is one. */
  intern(value: string): string {
    const found = this.#known.get(value);
    if (found !== undefined) return found;
    if (value.length > this.maxLength) return value;
    // Full: start over rather than stop taking new values, so that values a client chose once (a filter with a
    // request id of its own) cannot keep the common ones out for good.
    if (this.#known.size >= this.max) this.#known.clear();
    // A copy of its own: `value` may be a slice (a view into a longer string, e.g. a whole topic with a device's
    // id), which the table would keep alive. The JSON round trip copies any string exactly (lone surrogates too).
    const copy = JSON.parse(JSON.stringify(value)) as string;
    this.#known.set(copy, copy);
    return copy;
  }
}
