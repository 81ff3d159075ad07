/** A flat JSON diff: every leaf path that was added, removed or changed between two values. */

export type DiffKind = 'added' | 'removed' | 'changed';
export interface DiffEntry {
  path: string;
  kind: DiffKind;
  before?: unknown;
  after?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

export function flatten(value: unknown, prefix = '', out: Map<string, unknown> = new Map()): Map<string, unknown> {
  if (isObject(value) && Object.keys(value).length > 0) {
    for (const [k, v] of Object.entries(value)) {
      flatten(v, prefix ? (Array.isArray(value) ? `${prefix}[${k}]` : `${prefix}.${k}`) : k, out);
    }
  } else {
    out.set(prefix || '(root)', value);
  }
  return out;
}

export function jsonDiff(before: unknown, after: unknown): DiffEntry[] {
  const a = flatten(before);
  const b = flatten(after);
  const entries: DiffEntry[] = [];
  for (const [path, v] of a) {
    if (!b.has(path)) entries.push({ path, kind: 'removed', before: v });
    else if (JSON.stringify(v) !== JSON.stringify(b.get(path)))
      entries.push({ path, kind: 'changed', before: v, after: b.get(path) });
  }
  for (const [path, v] of b) if (!a.has(path)) entries.push({ path, kind: 'added', after: v });
  return entries.sort((x, y) => x.path.localeCompare(y.path));
}
