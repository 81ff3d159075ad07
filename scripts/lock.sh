#!/usr/bin/env bash
# Regenerate the two locks, a deliberate step (`make lock`):
#   requirements.lock      the fully pinned runtime closure of requirements.txt (what the Docker image installs);
#   requirements-dev.lock  that closure plus the test, lint and benchmark tools of requirements-dev.txt, pip
#                          included (what `make setup` installs, exactly, into .venv).
#
# It installs requirements.txt into a fresh virtual environment and writes `pip freeze` (without tradelab
# itself), then adds requirements-dev.txt constrained by that runtime lock and freezes again, so the runtime
# packages are the same in both. The torch pin keeps its public version only (`torch==2.13.0`, not
# `2.13.0+cpu`): the CPU wheel here and the CUDA build in the image's base (2.13.0+cu128) both satisfy it.
#
# Usage: scripts/lock.sh            (PYTHON=python3.11 and LOCK_VENV=/tmp/lockvenv by default)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3.11}"
LOCK_VENV="${LOCK_VENV:-/tmp/lockvenv}"
PY_VERSION="$("$PYTHON" --version | cut -d' ' -f2 | cut -d. -f1,2)"

# freeze KEEP_PIP: the venv's packages as sorted pins, without tradelab (and without pip unless KEEP_PIP=1).
freeze() {
    "$LOCK_VENV/bin/pip" freeze --exclude tradelab --all \
        | grep -v -E "^(wheel$([ "$1" = 1 ] || echo '|pip'))==" \
        | grep -v -E '^(-e |tradelab @ )' \
        | sed -E 's/^([A-Za-z0-9_.-]+==[^+ ]+)\+[A-Za-z0-9.]+$/\1/' \
        | LC_ALL=C sort -f
}

echo "lock: fresh venv at $LOCK_VENV ($("$PYTHON" --version))" >&2
rm -rf "$LOCK_VENV"
"$PYTHON" -m venv "$LOCK_VENV"
"$LOCK_VENV/bin/pip" install --quiet --upgrade pip
# pip takes torch 2.13.0 from the local wheel cache (PIP_FIND_LINKS, /opt/wheels) when there is one.
"$LOCK_VENV/bin/pip" install --quiet -r requirements.txt

runtime="$(mktemp)" dev="$(mktemp)"
trap 'rm -f "$runtime" "$dev"' EXIT
{
    echo "# requirements.lock: every runtime dependency of requirements.txt, pinned (generated, do not edit)."
    echo "# Regenerate with scripts/lock.sh (fresh $PY_VERSION venv, \`pip install -r requirements.txt\`,"
    echo "# \`pip freeze --all\` without tradelab, pip and wheel (setuptools stays: torch and tensorboard need it);"
    echo "# local version labels such as torch's +cpu are dropped)."
    echo "# The Docker image installs it with \`pip install -r requirements.lock\` (infra/docker/Dockerfile)."
    freeze 0
} >"$runtime"

"$LOCK_VENV/bin/pip" install --quiet -r requirements-dev.txt -c "$runtime"
{
    echo "# requirements-dev.lock: requirements.lock plus every test, lint and benchmark tool of requirements-dev.txt"
    echo "# and pip itself, pinned (generated, do not edit). Regenerate with scripts/lock.sh (\`make lock\`)."
    echo "# \`make setup\` installs exactly this into .venv (tests/infra/test_lock.py checks the venv against it)."
    freeze 1
} >"$dev"

mv "$runtime" requirements.lock
mv "$dev" requirements-dev.lock
trap - EXIT
echo "lock: wrote requirements.lock ($(grep -c '==' requirements.lock) pins) and requirements-dev.lock" \
    "($(grep -c '==' requirements-dev.lock) pins)" >&2
