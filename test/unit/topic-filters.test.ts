import { describe, expect, it } from 'vitest';
import { deviceTopic, filterMatches, relativeTopic } from '../../mqtt-broker/protocol/topics.ts';

describe('filterMatches (MQTT topic filters)', () => {
  it.each([
    ['a/b/c', 'a/b/c', true],
    ['a/b/c', 'a/b/d', false],
    ['a/+/c', 'a/b/c', true],
    ['a/+/c', 'a/b/c/d', false],
    ['a/+', 'a/b/c', false],
    ['a/+/+', 'a/b/c', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'a', true],
    ['#', 'a/b', true],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
    ['+/+', 'a/b', true],
    ['$d/x/event/response/+', '$d/x/event/response/6', true],
    ['$d/x/event/response/+', '$d/y/event/response/6', false],
    ['$d/x/attributes/response', '$d/x/attributes/response', true],
    // Empty levels are levels: `+` matches one, `#` the rest.
    ['a/+', 'a/', true],
    ['a/+', 'a', false],
    ['+', '', true],
    ['a/+/b', 'a//b', true],
    ['a//b', 'a/b', false],
    ['a/', 'a', false],
    // A level matches as a whole, not as a prefix.
    ['ab/c', 'a/c', false],
    ['a/c', 'ab/c', false],
    ['a/bc', 'a/b', false],
    ['a/b', 'a/bc', false],
    ['a/#', 'ab', false],
    ['a/#', 'ab/c', false],
  ])('%s matches %s: %s', (filter, topic, expected) => {
    expect(filterMatches(filter, topic)).toBe(expected);
    // The same from an offset into a longer topic, as the device router asks.
    expect(filterMatches(filter, `$d/dev/${topic}`, 7)).toBe(expected);
  });

  /** The definition, level by level over split strings: what filterMatches does without making arrays. */
  function reference(filter: string, topic: string): boolean {
    const f = filter.split('/');
    const t = topic.split('/');
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '#') return true;
      if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
    }
    return f.length === t.length;
  }

  it('agrees with the level-by-level definition on every short filter and topic', () => {
    // Every string of up to 5 characters over a, b, / (topics) and a, b, /, +, # (filters).
    const strings = (alphabet: string[]) => {
      const all = [''];
      for (let n = 0, from = 0; n < 5; n++) {
        const to = all.length;
        for (let i = from; i < to; i++) for (const c of alphabet) all.push(all[i] + c);
        from = to;
      }
      return all;
    };
    const topics = strings(['a', 'b', '/']);
    const filters = strings(['a', 'b', '/', '+', '#']).filter((f) =>
      f.split('/').every((l) => l.length < 2 || !/[+#]/.test(l)),
    );
    let compared = 0;
    for (const filter of filters) {
      for (const topic of topics) {
        const expected = reference(filter, topic);
        if (filterMatches(filter, topic) !== expected) expect.fail(`${filter} against ${topic}`);
        // From an offset, as the device router matches the part after `$d/<deviceId>/`.
        if (filterMatches(filter, `a/+/${topic}`, 4) !== expected) expect.fail(`${filter} against a/+/${topic} from 4`);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(200_000);
  });
});

describe('relativeTopic (a device topic back to the device)', () => {
  it.each([
    ['dev1', deviceTopic('dev1', 'attributes/response'), 'attributes/response'],
    ['dev1', '$d/dev1/', ''],
    ['dev1', '$d/dev12/attributes/response', undefined],
    ['dev12', '$d/dev1/attributes/response', undefined],
    ['dev1', '$d/dev1', undefined],
    ['dev1', 'attributes/response', undefined],
    ['dev1', '$v/dev1/attributes/response', undefined],
  ])('%s, %s: %s', (deviceId, internal, expected) => {
    expect(relativeTopic(deviceId, internal)).toBe(expected);
  });
});
