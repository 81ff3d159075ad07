"""The real files of the ``joined`` fixture (``conftest.py``): the 2023 BTC files (merged) and the 2025 one."""

from __future__ import annotations

FILES = (
    "btc/binance_BTC_USDT-1m_2023-03-16_2023-05-01__andresciancio.json.gz",
    "btc/binance_BTC_USDT-1m_2023-04-05_2023-05-05__justinbomber.json.gz",  # identical rows where they overlap
    "btc/binance_BTC_USDT-1m_2025-06-01_2025-07-01__xylotech.json.gz",
)
#: The hole between the 2023 files and the 2025 one.
HOLE = {"start": "2023-05-05T07:36:00Z", "end": "2025-06-01T17:22:00Z", "missing_bars": 1_092_107}
