#!/usr/bin/env bash
# The demo on the embedded defaults: synthesise candles, ingest, validate, derive 1h bars and splits,
# then compute a feature matrix from indicator tools, play one episode of a rule through the env, and train,
# select and test a PPO agent beside the baselines.
# Runs in its own TRADELAB_HOME (./.tradelab-demo) so it never touches a user's ~/.tradelab.
set -euo pipefail
cd "$(dirname "$0")/.."
export TRADELAB_HOME="${TRADELAB_DEMO_HOME:-$PWD/.tradelab-demo}"
tl() { "${TRADELAB_BIN:-.venv/bin/tradelab}" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

raw="$TRADELAB_HOME/raw/SYNTH-BTC-1m-90d.zip"
mkdir -p "$(dirname "$raw")"

step "1. Synthesise 90 days of BTC-like 1-minute candles (a Binance kline ZIP)"
tl data synth --symbol SYNTH-BTC --days 90 --seed 7 --start 2024-01-01 --out "$raw"

step "2. Ingest it into the Parquet store (checked, atomic, idempotent)"
tl data ingest "$raw" --symbol SYNTH-BTC

step "3. Validate (gaps are expected: the generator simulates exchange maintenance)"
tl data validate SYNTH-BTC

step "4. Resample to 1h bars, stored as their own dataset"
tl data resample SYNTH-BTC --to 1h

step "5. Chronological train/val/test split with an embargo, verified leak-free"
tl data split SYNTH-BTC --train 0.7 --val 0.15 --test 0.15 --warmup 60

step "6. Features: TA-Lib, built-in and manifest tools into one cached float32 matrix"
tl tools compute SYNTH-BTC --tool RSI:timeperiod=14,as=rsi14 --tool MACD --tool ATR --tool realized_vol \
    --tool vwap_day --tool donchian_atr_breakout --start 2024-03-01 --end 2024-03-31

step "7. The trading env: Gymnasium's checker, then one week-long episode of an SMA trend rule"
# (the checker's notes about the unbounded observation Box are silenced here)
PYTHONWARNINGS=ignore::UserWarning tl env check examples/env/synth-btc.json --policy sma

step "8. Train a PPO agent on the native vectorized env, select it on validation, test it beside the baselines"
tl run examples/configs/ppo-btc-1m.yaml --out "$TRADELAB_HOME/runs" --set total_timesteps=150000

step "9. The store"
tl data list
tl data info SYNTH-BTC

printf '\nDemo data lives in %s. Load it in Python:\n' "$TRADELAB_HOME"
printf '  TRADELAB_HOME=%s .venv/bin/python -c "import tradelab.data as td; print(td.load(\\"SYNTH-BTC\\", \\"1h\\"))"\n' "$TRADELAB_HOME"
