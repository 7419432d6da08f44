/**
 * One CSV cell of an export that people open in spreadsheets. Text a spreadsheet would run as a
 * formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'`, so it is
 * shown as the text it is; numbers stay numbers (-5 is a number cell, not a formula). Cells with a
 * quote, comma or line break are quoted (RFC 4180).
 */
export function csvCell(value: unknown): string {
  let text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  if (typeof value === 'string' && /^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
