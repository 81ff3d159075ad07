import type { ErrorSchema } from '@rjsf/utils';
import { ApiError } from '../api/client';
import type { ValidationItem } from '../api/types';

/** The FastAPI validation items of an ApiError (a 422), else []. */
export function validationItems(error: unknown): ValidationItem[] {
  if (!(error instanceof ApiError) || error.status !== 422) return [];
  const detail = (error.body as { detail?: unknown } | undefined)?.detail;
  return Array.isArray(detail) ? (detail as ValidationItem[]) : [];
}

/**
 * Map FastAPI `detail: [{loc: [...prefix, ...path], msg}]` onto an rjsf ErrorSchema (`extraErrors`): the items
 * under `prefix` land at their field; the others are returned apart (shown above the form).
 */
export function toExtraErrors(
  items: ValidationItem[],
  prefix: (string | number)[],
): { errors: ErrorSchema; rest: ValidationItem[] } {
  const errors: Record<string, unknown> = {};
  const rest: ValidationItem[] = [];
  for (const item of items) {
    const loc = item.loc ?? [];
    const matches = prefix.every((p, i) => loc[i] === p);
    if (!matches) {
      rest.push(item);
      continue;
    }
    let node = errors;
    for (const part of loc.slice(prefix.length)) {
      const key = String(part);
      node[key] = (node[key] as Record<string, unknown>) ?? {};
      node = node[key] as Record<string, unknown>;
    }
    node.__errors = [...((node.__errors as string[]) ?? []), item.msg];
  }
  return { errors: errors as ErrorSchema, rest };
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
