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

backend="${BACKEND:-local}"
if [ "$backend" = "local" ]; then
  step "8. Train a PPO agent on the native vectorized env, select it on validation, test it beside the baselines"
  tl run examples/configs/ppo-btc-1m.yaml --out "$TRADELAB_HOME/runs" --set total_timesteps=150000
else
  step "8. (training runs on a RunPod pod in step 10)"
fi

step "9. The store"
tl data list
tl data info SYNTH-BTC

step "10. The control plane: API + worker ($backend backend) on SQLite; the experiment launched and followed through the API alone"
token="$(tl init | tail -n 1)"
port="${DEMO_PORT:-$("${PYTHON_BIN:-.venv/bin/python}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
url="http://127.0.0.1:$port"
if [ "$backend" = "runpod-fake" ]; then  # the API accepts and reads run artifacts under this root only, as the worker
  export TRADELAB_STORAGE_URL="file://$TRADELAB_HOME/storage"
fi
# Started directly (not through the tl function), so that $! is the process itself and the trap stops it.
"${TRADELAB_BIN:-.venv/bin/tradelab}" serve --port "$port" > "$TRADELAB_HOME/serve.log" 2>&1 &
serve_pid=$!
worker_args=(--api-url "$url" --interval 0.5)
fake_pid=""
if [ "$backend" = "runpod-fake" ]; then
  # The fake RunPod API on loopback: the real SDK talks to it, its "pods" run the real `tradelab worker run`
  # in their own empty home, so they pull the dataset from storage (pushed here) like a real pod would.
  storage="$TRADELAB_STORAGE_URL"
  tl data push SYNTH-BTC --to "$storage/data"
  "${PYTHON_BIN:-.venv/bin/python}" -m tradelab.compute.fake_runpod --root "$TRADELAB_HOME/fake-runpod" \
      --start-delay 2 > "$TRADELAB_HOME/fake-runpod.log" 2>&1 &
  fake_pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$TRADELAB_HOME/fake-runpod.log" 2>/dev/null && break; sleep 0.1; done
  export RUNPOD_API_BASE_URL; RUNPOD_API_BASE_URL="$(sed -n 's/.*listening on //p' "$TRADELAB_HOME/fake-runpod.log" | head -n 1)"
  export TRADELAB_RUNPOD_API_KEY="fake-key"
  echo "fake RunPod at $RUNPOD_API_BASE_URL"
  worker_args+=(--backend runpod --image tradelab:demo --storage-url "$storage" --data-url "$storage/data")
elif [ "$backend" != "local" ]; then
  echo "BACKEND must be local or runpod-fake, not $backend" >&2; exit 2
fi
"${TRADELAB_BIN:-.venv/bin/tradelab}" worker "${worker_args[@]}" > "$TRADELAB_HOME/worker.log" 2>&1 &
worker_pid=$!
trap 'kill "$serve_pid" "$worker_pid" $fake_pid 2>/dev/null; wait "$serve_pid" "$worker_pid" $fake_pid 2>/dev/null || true' EXIT
"${PYTHON_BIN:-.venv/bin/python}" - "$url" <<'PY'
import sys, time, httpx
for _ in range(150):
    try:
        if httpx.get(sys.argv[1] + "/health").status_code == 200:
            break
    except httpx.TransportError:
        time.sleep(0.2)
PY
echo "admin token (from tradelab init): $token"
echo "dashboard: $url/ (paste the admin token when it asks)"
"${PYTHON_BIN:-.venv/bin/python}" scripts/demo_api.py "$url" "$token" examples/configs/ppo-btc-1m.yaml --timesteps 150000 \
    --backend "${backend%-fake}"

printf '\nDemo data lives in %s. Load it in Python:\n' "$TRADELAB_HOME"
printf '  TRADELAB_HOME=%s .venv/bin/python -c "import tradelab.data as td; print(td.load(\\"SYNTH-BTC\\", \\"1h\\"))"\n' "$TRADELAB_HOME"

if [ "${SERVE:-1}" = "1" ]; then
  printf '\nThe control plane keeps serving: the dashboard at %s/ and API docs at %s/docs (the admin token above).' "$url" "$url"
  printf ' Ctrl-C stops it.\n'
  wait "$serve_pid"
fi
