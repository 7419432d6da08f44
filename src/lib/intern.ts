/**
 * One copy of strings that many long-lived objects hold with the same value: every device's login identity holds
 * its project's id, every MQTT connection its filters (`attributes/response`, `command/send/+`…), each parsed
 * or sliced anew per connection (30–40 bytes of heap each, see bench/README "Memory per connection: settled, and the young generation's resident part"). The first
 * `max` distinct values of at most `maxLength` characters are kept; any other is returned as it is, so values a
 * client chooses can never grow the table past that. V8 has no interning a program can ask for (its own
 * internalization is for property names), hence this map.
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
    if (this.#known.size >= this.max || value.length > this.maxLength) return value;
    // A copy of its own: `value` may be a slice (a view into a longer string, e.g. a whole topic with a device's
    // id), which the table would keep alive. The JSON round trip copies any string exactly (lone surrogates too).
    const copy = JSON.parse(JSON.stringify(value)) as string;
    this.#known.set(copy, copy);
    return copy;
  }
}
