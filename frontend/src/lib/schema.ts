/**
 * Pydantic writes an optional scalar as `anyOf: [{type: X, ...}, {type: "null"}]`, which rjsf renders as an
 * "option 1 / option 2" picker. This rewrites those (recursively) to `{type: [X, "null"], ...}`, a plain input.
 * Other anyOf/oneOf (objects, $refs, unions of several types) are left to rjsf.
 */
type Json = Record<string, unknown>;
const SCALARS = new Set(['string', 'number', 'integer', 'boolean']);

export function simplifyNullable<T>(schema: T): T {
  if (Array.isArray(schema)) return schema.map((s) => simplifyNullable(s)) as T;
  if (typeof schema !== 'object' || schema === null) return schema;
  const out: Json = {};
  for (const [k, v] of Object.entries(schema as Json)) out[k] = simplifyNullable(v);
  const options = out.anyOf as Json[] | undefined;
  if (Array.isArray(options) && options.length === 2) {
    const nullIndex = options.findIndex((o) => o && o.type === 'null' && Object.keys(o).length === 1);
    const other = options[1 - nullIndex];
    if (nullIndex >= 0 && other && typeof other.type === 'string' && SCALARS.has(other.type) && !('$ref' in other)) {
      const { anyOf: _drop, ...rest } = out;
      void _drop;
      const merged: Json = { ...other, ...rest, type: [other.type, 'null'] };
      if (Array.isArray(other.enum) && !other.enum.includes(null)) merged.enum = [...other.enum, null];
      return merged as T;
    }
  }
  return out as T;
}
