import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { headingsOf, lint, lintRepository, slug } from '../helpers/docs-lint.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The section sign and the tracker word, built so this file cites nothing and names no issue itself. */
const SS = '\u00a7';
const ISSUE = 'iss' + 'ue';
const H = '#';
const R = 'READ' + 'ME';
const SHARED = 'sha' + 'red';
const WORK = '/wo' + 'rk/';

/** Lints a small repository of the given files (every listed path exists). */
function lintOf(files: Record<string, string>, extra: string[] = []) {
  const map = new Map(Object.entries(files));
  const known = new Set([...map.keys(), ...extra]);
  return lint({ files: map, exists: (p) => known.has(p) || [...known].some((k) => k.startsWith(`${p}/`)) });
}

const DOC = `# Device protocol\n\n## 1. Identities\n\n## 3. Device topics\n\n### 3.2 Refusals and acknowledgements\n\n## 4. Certificate\n`;
const README = `# app\n\n## Security and limits\n\n### The limits\n\n## Raw TCP devices (\`tcp/\`)\n`;

describe('docs lint: the rules', () => {
  it('makes anchors as GitHub does', () => {
    expect(slug('1. Envelope and errors')).toBe('1-envelope-and-errors');
    expect(slug('Raw TCP devices (`tcp/`)')).toBe('raw-tcp-devices-tcp');
    expect(slug('Operating: projects, database, Docker')).toBe('operating-projects-database-docker');
    expect(slug('3.2 Refusals — and [links](x.md)')).toBe('32-refusals--and-links');
    expect([...headingsOf('# A\n## A\n```\n# not a heading\n```\n').anchors]).toEqual(['a', 'a-1']);
  });

  it('accepts links, anchors and citations that resolve', () => {
    expect(
      lintOf(
        {
          'README.md': `${README}\nSee [the protocol](docs/device-protocol.md#3-device-topics), [limits](#the-limits), [src](src) and [site](https://example.com/x#y).\n`,
          'docs/device-protocol.md': `${DOC}\nAs in ${SS}3.2 and ${SS}1; ${R} "Security and limits".\n`,
          'src/a.ts': `// device-protocol.md ${SS}3, ${SS}4 and docs/device-protocol.md ${SS}3–4; ${R} "Raw TCP devices"\n// porsager/postgres${H}1154, ${H}1208; color: #333\n`,
          'src/c.ts': `/**\n * device-protocol.md ${SS}3 "Device topics", ${SS}4;\n * online only by a session (${SS}1).\n */\n`,
          'docs/other.md': `# Other\n\n## 1. One\n\nSee ${SS}1 and [device-protocol.md](device-protocol.md) ${SS}3, ${SS}4 and ${SS}1.\n`,
        },
        ['src/b.ts'],
      ),
    ).toEqual([]);
  });

  it('reports a link to a missing file, a missing anchor, and a path outside the repository', () => {
    const offences = lintOf({
      'README.md': `${README}\n[a](docs/missing.md) [b](#no-such-heading) [c](../${SHARED}/spec/x.md)\n\`\`\`\n[in code](nowhere.md)\n\`\`\`\n`,
      'docs/x.md': `# X\nThe spec is in ${WORK}${SHARED}/spec.\n`,
    });
    expect(offences).toEqual([
      'README.md:9: link "docs/missing.md": no file docs/missing.md',
      'README.md:9: link "#no-such-heading": README.md has no heading #no-such-heading',
      `README.md:9: link "../${SHARED}/spec/x.md" points outside the repository`,
      `README.md:9: "../${SHARED}/" points outside the repository`,
      `docs/x.md:2: "${WORK}" points outside the repository`,
    ]);
  });

  it('reports citations of sections and documents that do not exist, and citations without a document', () => {
    const offences = lintOf({
      'docs/device-protocol.md': DOC,
      'src/a.ts': `// device-protocol.md ${SS}2\n// device-protocol.md ${SS}3.2, ${SS}3.5\n// device-protocol.md ${SS}3–4, ${SS}1–2\n// tls.md ${SS}1\n\n// see ${SS}4\n`,
    });
    expect(offences).toEqual([
      `src/a.ts:1: "device-protocol.md ${SS}2": docs/device-protocol.md has no section 2`,
      `src/a.ts:2: "device-protocol.md ${SS}3.2, ${SS}3.5": docs/device-protocol.md has no section 3.5`,
      `src/a.ts:3: "device-protocol.md ${SS}3–4, ${SS}1–2": docs/device-protocol.md has no section 2`,
      `src/a.ts:4: "tls.md ${SS}1": there is no docs/tls.md`,
      `src/a.ts:6: "${SS}4": a section citation must name its document (device-protocol.md ${SS}N, http-api.md ${SS}N, architecture.md ${SS}N)`,
    ]);
  });

  it('reports README citations of headings that do not exist', () => {
    const offences = lintOf({
      'README.md': README,
      'mqtt-broker/README.md': '# mqtt-broker\n## Gateways\n',
      'src/a.ts': `// ${R} "Security and limit"\n// mqtt-broker/${R}.md "Gateways", mqtt-broker/${R}.md "Raw TCP"\n`,
    });
    expect(offences).toEqual([
      `src/a.ts:1: ${R} "Security and limit": ${R}.md has no such heading`,
      `src/a.ts:2: mqtt-broker/${R}.md "Raw TCP": mqtt-broker/${R}.md has no such heading`,
    ]);
  });

  it('reports issue numbers, but not upstream references, colours or quoted numbers', () => {
    const offences = lintOf({
      'src/a.ts': `// the pipeline (${ISSUE} ${H}4)\n// ${ISSUE.toUpperCase()} 6 allows 10%\n// proven (${H}3, ${H}4)\nconst s = "#1"; // color: #333; postgres/postgres${H}12\n`,
      'package-lock.json': `"${ISSUE} ${H}9"`,
      'patches/x.patch': `// [${H}823] upstream`,
    });
    expect(offences).toEqual([
      `src/a.ts:1: ${ISSUE} number "${ISSUE} ${H}4": say what the comment means instead`,
      `src/a.ts:2: ${ISSUE} number "${ISSUE.toUpperCase()} 6": say what the comment means instead`,
      'src/a.ts:3: "#3" reads as an issue number: say what it refers to',
      'src/a.ts:3: "#4" reads as an issue number: say what it refers to',
    ]);
  });
});

describe('docs lint: this repository', () => {
  it('has no broken link, citation, outside path or issue number', () => {
    const offences = lintRepository(ROOT);
    // One line per offence, file:line first, so the failure reads as a list to fix.
    expect(offences, `\n${offences.join('\n')}\n`).toEqual([]);
  });
});
