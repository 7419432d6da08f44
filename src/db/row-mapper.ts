import { Column, is, SQL } from 'drizzle-orm';

/**
 * drizzle turns each row of a select into an object field by field, asking for every field of every row
 * what kind of field it is (`is()` walks the prototype chain) and walking its path with an iterator: a
 * page of 20 devices of ~27 columns spent more CPU there than in reading the rows off the socket (a CPU
 * profile of `GET /api/v1/devices` put it at ~11% of the server's time; bench/README "Answers compiled,
 * rows mapped once"). For a prepared statement the fields never change, so this looks the decoders up once
 * and maps each row with a plain loop, giving the objects drizzle would.
 *
 * What it relies on: both drivers' prepared queries (postgres-js and pglite) keep the select's fields in
 * `fields` and map rows with `customResultMapper` when one is set (what drizzle's relational queries use).
 * A select whose fields are not all flat (a nested object, a joined table as its own key, where drizzle
 * also turns an all-null joined row into null) keeps drizzle's own mapping; so does a prepared query of
 * another shape (a future drizzle), and `test/integration/row-mapper.test.ts` says when that happens.
 */
interface Field {
  path: string[];
  field: unknown;
}
interface Decoder {
  mapFromDriverValue(value: unknown): unknown;
}
interface MappablePrepared {
  fields?: Field[];
  customResultMapper?: (rows: unknown[][]) => unknown;
}

function decoderOf(field: unknown): Decoder | undefined {
  if (is(field, Column)) return field;
  // `decoder` is internal to drizzle's SQL (what mapResultRow itself reads).
  if (is(field, SQL)) return (field as unknown as { decoder: Decoder }).decoder;
  if (is(field, SQL.Aliased)) return (field.sql as unknown as { decoder: Decoder }).decoder;
  return undefined;
}

/** The row mapper of `fields`, or undefined when drizzle's own mapping must stay (see above). */
export function compileRowMapper(
  fields: readonly Field[],
): ((rows: unknown[][]) => Record<string, unknown>[]) | undefined {
  const keys: string[] = [];
  const decoders: Decoder[] = [];
  for (const f of fields) {
    const decoder = decoderOf(f.field);
    // `__proto__` in an object literal would set the prototype, not a key.
    if (f.path.length !== 1 || !decoder || f.path[0] === '__proto__') return undefined;
    keys.push(f.path[0]!);
    decoders.push(decoder);
  }
  // One object literal of the select's keys (drizzle's own key order), built once by code generation: a loop
  // assigning `o[key]` made every assignment one megamorphic store (27 shapes at one site), which left the
  // mapping at ~7% of a list request's CPU. The keys are the select's own field names, never data.
  // A column that keeps the driver's value (text, boolean: Column's own identity decoder) is not called.
  const identity = Column.prototype.mapFromDriverValue;
  const body = keys
    .map((key, i) =>
      decoders[i]!.mapFromDriverValue === identity
        ? `${JSON.stringify(key)}: row[${i}]`
        : `${JSON.stringify(key)}: row[${i}] === null ? null : d[${i}].mapFromDriverValue(row[${i}])`,
    )
    .join(',\n');
  const one = new Function('d', `return (row) => ({\n${body}\n});`)(decoders) as (
    row: unknown[],
  ) => Record<string, unknown>;
  return (rows) => rows.map(one);
}

/** Makes a prepared select map its rows with `compileRowMapper` (when it can); returns it. */
export function withCompiledRows<T>(prepared: T): T {
  const p = prepared as T & MappablePrepared;
  const mapper = Array.isArray(p.fields) && !p.customResultMapper ? compileRowMapper(p.fields) : undefined;
  if (mapper) p.customResultMapper = mapper;
  return prepared;
}
