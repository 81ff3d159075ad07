"""Live ingestion of 1-minute klines from an exchange's websocket stream (Binance format) into the store.

``tradelab data stream binance --symbol BTCUSDT`` runs :class:`StreamIngestor`; its progress is in
``<dataset>/stream.json``, read with :func:`read_stream_status`. :mod:`tradelab.data.stream.replay` is
a local fake exchange for tests and demos.
"""

from __future__ import annotations

from tradelab.data.stream.ingestor import BINANCE_REST_URL, BINANCE_WS_URL, StreamIngestor, StreamOptions, run_stream
from tradelab.data.stream.klines import Kline, MalformedKlineError, parse_rest_row, parse_ws_message
from tradelab.data.stream.status import StreamState, StreamStatus, read_stream_status

__all__ = [
    "BINANCE_REST_URL",
    "BINANCE_WS_URL",
    "Kline",
    "MalformedKlineError",
    "StreamIngestor",
    "StreamOptions",
    "StreamState",
    "StreamStatus",
    "parse_rest_row",
    "parse_ws_message",
    "read_stream_status",
    "run_stream",
]
