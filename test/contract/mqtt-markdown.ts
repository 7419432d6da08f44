import { parseMarkdown } from './markdown.ts';

/**
 * Reading the MQTT examples of docs/device-protocol.md as data (its "How to read the examples" paragraph
 * states the format): a fenced ```mqtt block is one conversation of one device connection, a line per
 * message, in order:
 * - `> <topic> <payload>` — the device publishes;
 * - `< <topic> <payload>` — the device receives. On a push or command topic (`attributes/push`,
 *   `command/send/<id>`, `gateway/attributes/push`, `gateway/command/send`) the application sent it through
 *   the project API; on any other topic it answers the `>` line above it.
 * A block whose topics start with `gateway/` is the gateway's connection. Payloads are JSON, compared as the
 * http examples are (field names and JSON types, `"..."` for open objects), and `result` and `errcode` must
 * also have the values shown. `<name>` placeholders are filled from the fixtures.
 */

export interface MqttLine {
  dir: 'send' | 'receive';
  topic: string;
  /** The payload exactly as written (placeholders still in it). */
  payload: string;
  line: number;
}

export interface MqttExample {
  line: number;
  gateway: boolean;
  lines: MqttLine[];
}

/** Downstream topics the application causes (a push or a command), not answers to the device. */
export const CLOUD_SENT = /^(attributes\/push|command\/send\/\d+|gateway\/attributes\/push|gateway\/command\/send)$/;

export function parseMqttExamples(md: string): MqttExample[] {
  return parseMarkdown(md)
    .fences.filter((f) => f.lang === 'mqtt')
    .map((f) => {
      const lines = f.content.split('\n').flatMap((text, i): MqttLine[] => {
        if (text.trim() === '') return [];
        const m = /^([<>]) (\S+) (.+)$/.exec(text);
        if (!m)
          throw new Error(
            `line ${f.line + 1 + i}: an mqtt example line is "> topic payload" or "< topic payload", got ${JSON.stringify(text)}`,
          );
        return [{ dir: m[1] === '>' ? 'send' : 'receive', topic: m[2]!, payload: m[3]!, line: f.line + 1 + i }];
      });
      if (lines.length === 0) throw new Error(`line ${f.line}: an empty mqtt example`);
      const gateway = lines.map((l) => l.topic.startsWith('gateway/'));
      if (gateway.some((g) => g !== gateway[0]))
        throw new Error(`line ${f.line}: an mqtt example mixes gateway topics and device topics`);
      return { line: f.line, gateway: gateway[0]!, lines };
    });
}
