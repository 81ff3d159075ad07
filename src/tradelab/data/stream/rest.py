"""Backfill from Binance's REST klines endpoint, ``GET {rest}/api/v3/klines``, page by page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

from tradelab.data.stream.klines import INTERVAL, MINUTE_MS, Kline, MalformedKlineError, parse_rest_row

PAGE_LIMIT = 1000  # Binance's maximum rows per request


async def fetch_klines(
    client: httpx.AsyncClient,
    rest_url: str,
    symbol: str,
    start_ms: int,
    end_ms: int,
    *,
    on_malformed: Callable[[str], None],
    interval: str = INTERVAL,
) -> AsyncIterator[list[Kline]]:
    """Yield the klines opening in ``[start_ms, end_ms]``, one page (at most 1000) at a time, oldest first.

    Rows that fail the checks of :func:`parse_rest_row` are skipped and reported to ``on_malformed``.

    :raises httpx.HTTPError: on a network error or an error status (the caller reconnects and retries).
    """
    url = f"{rest_url.rstrip('/')}/api/v3/klines"
    while start_ms <= end_ms:
        params = {"symbol": symbol, "interval": interval, "startTime": start_ms, "endTime": end_ms}
        response = await client.get(url, params={**params, "limit": PAGE_LIMIT})
        response.raise_for_status()
        try:
            rows = response.json()
        except ValueError:
            rows = response.text
        if not isinstance(rows, list):
            raise httpx.DecodingError(f"GET {url}: expected a JSON array of klines, got {str(rows)[:80]!r}")
        page = []
        for row in rows:
            try:
                page.append(parse_rest_row(row))
            except MalformedKlineError as exc:
                on_malformed(exc.reason)
        page = [k for k in page if start_ms <= k.open_ms <= end_ms]
        if page:
            yield page
        if len(rows) < PAGE_LIMIT or not page:
            return
        start_ms = page[-1].open_ms + MINUTE_MS
