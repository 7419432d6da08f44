import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dictionaries, en, initialLang, languageNames, translate, zh } from '../src/i18n.ts';

const srcDir = path.join(import.meta.dirname, '..', 'src');
const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.tsx') ? [path.join(dir, e.name)] : [],
  );

describe('i18n', () => {
  it('has every key in both languages, none empty, and Chinese texts that are not left in English', () => {
    expect(Object.keys(zh).sort()).toEqual(Object.keys(en).sort());
    for (const lang of Object.keys(dictionaries) as (keyof typeof dictionaries)[]) {
      for (const [k, v] of Object.entries(dictionaries[lang])) expect(v.trim(), `${lang}.${k}`).not.toBe('');
    }
    const same = Object.keys(en).filter(
      (k) => zh[k as keyof typeof en] === en[k as keyof typeof en] && /[a-z]{3}/i.test(en[k as keyof typeof en]),
    );
    expect(same).toEqual(['url']);
  });

  it('keeps the placeholders of every text in its translation', () => {
    for (const k of Object.keys(en) as (keyof typeof en)[]) {
      const vars = (s: string) => (s.match(/\{\w+\}/g) ?? []).sort();
      expect(vars(zh[k]), k).toEqual(vars(en[k]));
    }
  });

  it("every key the pages use exists (t('…') calls)", () => {
    const used = new Set<string>();
    for (const f of sources(srcDir))
      for (const m of readFileSync(f, 'utf8').matchAll(/\bt\('(\w+)'/g)) used.add(m[1] as string);
    expect(used.size).toBeGreaterThan(50);
    expect([...used].filter((k) => !(k in en))).toEqual([]);
  });

  it('fills placeholders and names the languages in their own language', () => {
    expect(translate('en', 'chartOf', { name: 'Temperature' })).toBe('Chart of Temperature');
    expect(translate('zh', 'pageOf', { page: 1, pages: 2, total: 30 })).toBe('第 1 / 2 页 · 共 30 台设备');
    expect(languageNames).toEqual({ en: 'English', zh: '简体中文' });
  });

  it('starts in the remembered language, else Chinese for a Chinese browser, else English', () => {
    expect(initialLang('zh', ['en-US'])).toBe('zh');
    expect(initialLang('en', ['zh-CN'])).toBe('en');
    expect(initialLang(null, ['zh-CN', 'en'])).toBe('zh');
    expect(initialLang('fr', ['en-US'])).toBe('en');
  });
});
