import { describe, expect, it } from 'vitest';
import { lttbIndices, minMaxIndices, downsampleForDisplay } from '../lib/downsample';
import { jsonDiff } from '../lib/diff';
import { toExtraErrors } from '../lib/errors';
import { SseParser } from '../lib/sse';

function series(n: number) {
  const xs = Array.from({ length: n }, (_, i) => i);
  const ys = xs.map((i) => Math.sin(i / 500) * 10 + (i % 7) * 0.01);
  return { xs, ys };
}

describe('downsampling', () => {
  it('min/max buckets keep the global extremes, the ends, and the order', () => {
    const { ys } = series(525_600);
    ys[123_456] = 1_000; // a spike
    ys[400_001] = -1_000; // a crash
    const kept = minMaxIndices(ys, 500);
    expect(kept.length).toBeLessThanOrEqual(2000);
    expect(kept).toContain(0);
    expect(kept).toContain(ys.length - 1);
    expect(kept).toContain(123_456);
    expect(kept).toContain(400_001);
    expect([...kept].sort((a, b) => a - b)).toEqual(kept);
    const values = kept.map((i) => ys[i]);
    expect(Math.max(...values)).toBe(1_000);
    expect(Math.min(...values)).toBe(-1_000);
  });

  it('LTTB keeps the threshold, the ends and a lone spike', () => {
    const { xs, ys } = series(100_000);
    ys[50_000] = 500;
    const kept = lttbIndices(xs, ys, 1000);
    expect(kept).toHaveLength(1000);
    expect(kept[0]).toBe(0);
    expect(kept[kept.length - 1]).toBe(99_999);
    expect(kept).toContain(50_000);
  });

  it('leaves a short series alone', () => {
    expect(downsampleForDisplay(10, [1, 2, 3])).toBeNull();
    expect(lttbIndices([0, 1, 2], [1, 2, 3], 10)).toEqual([0, 1, 2]);
  });
});

describe('helpers', () => {
  it('diffs two configs by path', () => {
    const d = jsonDiff({ a: 1, b: { c: 2, d: 3 } }, { a: 1, b: { c: 5 }, e: [1] });
    expect(d).toEqual([
      { path: 'b.c', kind: 'changed', before: 2, after: 5 },
      { path: 'b.d', kind: 'removed', before: 3 },
      { path: 'e[0]', kind: 'added', after: 1 },
    ]);
  });

  it('maps FastAPI locs to rjsf extraErrors', () => {
    const { errors, rest } = toExtraErrors(
      [
        { loc: ['body', 'config', 'dataset', 'symbol'], msg: 'bad symbol' },
        { loc: ['body', 'config'], msg: 'root problem' },
        { loc: ['body', 'name'], msg: 'bad name' },
      ],
      ['body', 'config'],
    );
    expect(errors).toEqual({ dataset: { symbol: { __errors: ['bad symbol'] } }, __errors: ['root problem'] });
    expect(rest).toHaveLength(1);
  });

  it('parses SSE across chunk boundaries', () => {
    const p = new SseParser();
    expect(p.push('id: 1\nevent: run_state\nda')).toEqual([]);
    expect(p.push('ta: {"id":1}\n\n: ping\n\n')).toEqual([{ id: '1', event: 'run_state', data: '{"id":1}' }]);
  });
});

import { simplifyNullable } from '../lib/schema';

describe('schema', () => {
  it('turns nullable scalars into plain inputs and keeps other unions', () => {
    const schema = {
      properties: {
        version: { anyOf: [{ type: 'string', maxLength: 64 }, { type: 'null' }], default: null, title: 'Version' },
        split: { anyOf: [{ $ref: '#/$defs/Split' }, { type: 'null' }] },
        norm: { anyOf: [{ type: 'string', enum: ['zscore', 'ratio_close'] }, { type: 'null' }], default: null },
      },
    };
    expect(simplifyNullable(schema)).toEqual({
      properties: {
        version: { type: ['string', 'null'], maxLength: 64, default: null, title: 'Version' },
        split: { anyOf: [{ $ref: '#/$defs/Split' }, { type: 'null' }] },
        norm: { type: ['string', 'null'], enum: ['zscore', 'ratio_close', null], default: null },
      },
    });
  });
});
