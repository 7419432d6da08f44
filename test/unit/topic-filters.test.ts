import { describe, expect, it } from 'vitest';
import { filterMatches } from '../../mqtt-broker/protocol/topics.ts';

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
  ])('%s matches %s: %s', (filter, topic, expected) => {
    expect(filterMatches(filter, topic)).toBe(expected);
  });
});
