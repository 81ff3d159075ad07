export const fmtNum = (v: number | null | undefined, digits = 2): string =>
  v === null || v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);

export const fmtMoney = (v: number | null | undefined): string =>
  v === null || v === undefined ? '—' : `$${v.toFixed(2)}`;

export const fmtDate = (v: string | null | undefined): string => {
  if (!v) return '—';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? v : d.toISOString().replace('T', ' ').slice(0, 19);
};

/** Seconds since the epoch for an ISO string, epoch seconds or epoch milliseconds. */
export function toEpochSeconds(v: string | number): number {
  if (typeof v === 'number') return v > 1e11 ? Math.floor(v / 1000) : Math.floor(v);
  return Math.floor(new Date(v).getTime() / 1000);
}

export function spanLabel(start: string, end: string): string {
  const s = new Date(start);
  const e = new Date(end);
  const days = (e.getTime() - s.getTime()) / 86_400_000;
  return `${fmtDate(start).slice(0, 10)} → ${fmtDate(end).slice(0, 10)} (${days.toFixed(0)} d)`;
}
