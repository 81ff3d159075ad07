#!/usr/bin/env bash
# Regenerate requirements.lock: the fully pinned runtime closure of requirements.txt.
#
# It installs requirements.txt into a fresh virtual environment and writes `pip freeze` (without tradelab
# itself). The torch pin keeps its public version only (`torch==2.13.0`, not `2.13.0+cpu`): the CPU wheel
# here and the CUDA build in the image's base (2.13.0+cu128) both satisfy it.
#
# Usage: scripts/lock.sh            (PYTHON=python3.11 and LOCK_VENV=/tmp/lockvenv by default)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3.11}"
LOCK_VENV="${LOCK_VENV:-/tmp/lockvenv}"
OUT="${OUT:-requirements.lock}"

echo "lock: fresh venv at $LOCK_VENV ($("$PYTHON" --version))" >&2
rm -rf "$LOCK_VENV"
"$PYTHON" -m venv "$LOCK_VENV"
# pip takes torch 2.13.0 from the local wheel cache (PIP_FIND_LINKS, /opt/wheels) when there is one.
"$LOCK_VENV/bin/pip" install --quiet -r requirements.txt

tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
{
    echo "# requirements.lock: every runtime dependency of requirements.txt, pinned (generated, do not edit)."
    echo "# Regenerate with scripts/lock.sh (fresh $("$PYTHON" --version | cut -d' ' -f2 | cut -d. -f1,2) venv, \`pip install -r requirements.txt\`,"
    echo "# \`pip freeze --all\` without tradelab, pip and wheel (setuptools stays: torch and tensorboard need it);"
    echo "# local version labels such as torch's +cpu are dropped)."
    echo "# The Docker image installs it with \`pip install -r requirements.lock\` (infra/docker/Dockerfile)."
    "$LOCK_VENV/bin/pip" freeze --exclude tradelab --all \
        | grep -v -E '^(pip|wheel)==' \
        | grep -v -E '^(-e |tradelab @ )' \
        | sed -E 's/^([A-Za-z0-9_.-]+==[^+ ]+)\+[A-Za-z0-9.]+$/\1/' \
        | LC_ALL=C sort -f
} >"$tmp"
mv "$tmp" "$OUT"
trap - EXIT
echo "lock: wrote $OUT ($(grep -c '==' "$OUT") pins)" >&2
