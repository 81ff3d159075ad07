"""Reading the requirement pins and what a venv holds, for the lock and image tests."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path


def canonical(name: str) -> str:
    """A distribution name normalized as PEP 503 does (``Foo_Bar.baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``name -> version`` of the ``==`` pins of a requirements file (extras dropped, names normalized)."""
    pins = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        assert match, f"{path.name}: not an == pin: {raw!r}"
        pins[canonical(match.group(1))] = match.group(3)
    return pins


def venv_versions(python: Path) -> dict[str, str]:
    """``name -> version`` of every distribution ``python`` sees (local labels such as ``+cpu`` dropped)."""
    code = (
        "import json, importlib.metadata as m; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout
    return {canonical(name): version.split("+")[0] for name, version in json.loads(out).items()}
