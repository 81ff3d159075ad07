"""The locks: every pin of the requirements is in them, and ``make setup`` gives a venv that equals them.

``requirements.lock`` is the runtime closure (the Docker image), ``requirements-dev.lock`` that closure plus
the test, lint and benchmark tools and pip (``.venv``). Both come from ``scripts/lock.sh`` (``make lock``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.pins import read_pins, venv_versions

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
DEV_LOCK = REPO / "requirements-dev.lock"
VENV_PYTHON = REPO / ".venv" / "bin" / "python"


@pytest.mark.parametrize(
    ("requirements", "lock"), [("requirements.txt", LOCK), ("requirements-dev.txt", DEV_LOCK)], ids=["runtime", "dev"]
)
def test_lock_pins_every_requirement_at_its_version(requirements: str, lock: Path) -> None:
    wanted, locked = read_pins(REPO / requirements), read_pins(lock)
    assert "tradelab" not in locked
    for name, version in wanted.items():
        assert name in locked, f"{lock.name} lacks {name}"
        assert locked[name] == version, f"{name}: {requirements} pins {version}, {lock.name} {locked[name]}"
    assert len(locked) > len(wanted)  # the transitive closure, not just the top level
    assert "scripts/lock.sh" in "".join(lock.read_text(encoding="utf-8").splitlines()[:3])  # says how to re-pin


def test_the_dev_lock_holds_the_runtime_lock_unchanged() -> None:
    runtime, dev = read_pins(LOCK), read_pins(DEV_LOCK)
    differing = {name: (version, dev.get(name)) for name, version in runtime.items() if dev.get(name) != version}
    assert not differing, f"requirements.lock vs requirements-dev.lock (name: (runtime, dev)): {differing}"
    assert "pip" in dev  # the installer is pinned too


def test_setup_installs_exactly_the_dev_lock() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    recipe = makefile[makefile.index("$(STAMP):") :].split("\n\n", 1)[0]
    assert "requirements-dev.lock" in recipe.splitlines()[0]  # a changed lock re-installs
    installs = [line for line in recipe.splitlines() if "pip install" in line and "-e ." not in line]
    assert installs and all("requirements-dev.lock" in line for line in installs), installs
    assert not re.search(r"--upgrade|-U\b", recipe), "setup must not upgrade past the lock"


def test_the_venv_equals_the_dev_lock() -> None:
    if not VENV_PYTHON.exists():
        pytest.skip("no project .venv (make setup)")
    installed = venv_versions(VENV_PYTHON)
    installed.pop("tradelab", None)
    locked = read_pins(DEV_LOCK)
    differing = {n: (locked.get(n), installed.get(n)) for n in locked.keys() | installed.keys()}
    differing = {n: pair for n, pair in differing.items() if pair[0] != pair[1]}
    assert not differing, f".venv differs from requirements-dev.lock (name: (locked, installed)): {differing}"


def test_lock_script_parses() -> None:
    subprocess.run(["bash", "-n", str(REPO / "scripts" / "lock.sh")], check=True)
