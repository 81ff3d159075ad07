"""The local backend: each run is a child process in its own session, tracked through files on disk.

A resource is a folder ``<root>/<idempotency key>/`` holding ``meta.json`` (pid, run id, start time, lab id),
``output.log`` and, once the command ends, ``exit`` with its status. Everything the reconciler needs lives
there, so a worker killed with ``kill -9`` finds its processes again after a restart (adopts them) and never
starts a second one for the same key.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

from tradelab.atomic import atomic_write_text
from tradelab.compute.base import ComputeBackend, ComputeSpec, ComputeState, Handle, Owned
from tradelab.processes import pid_alive

#: Runs the command, then writes its exit status beside it (even when the worker that started it is gone).
_WRAPPER = (
    'exit_file="$1"; shift; "$@"; status=$?; echo "$status" > "$exit_file.tmp" && mv "$exit_file.tmp" "$exit_file"'
)


class LocalBackend(ComputeBackend):
    """Child processes on this machine.

    :param root: folder of the resources' state.
    :param lab_id: tags every resource, so two labs sharing a machine never touch each other's processes.
    :param hourly_price: notional price per hour (0: local compute is free), for budget tests and accounting.
    """

    name: ClassVar[str] = "local"

    def __init__(self, root: Path, lab_id: str = "tradelab", hourly_price: float = 0.0) -> None:
        self.root = root
        self.lab_id = lab_id
        self.hourly_price = hourly_price
        root.mkdir(parents=True, exist_ok=True)

    def start(self, run_id: int, spec: ComputeSpec, idempotency_key: str) -> Handle:
        """Start the command in a new session (its own process group); an existing key returns its resource."""
        folder = self.root / idempotency_key
        handle = Handle(self.name, idempotency_key)
        if (folder / "meta.json").exists():
            return handle
        folder.mkdir(parents=True, exist_ok=True)
        command = spec.command
        if command[:1] == ["tradelab"]:  # the lab's CLI, under the worker's own interpreter
            command = [sys.executable, "-m", "tradelab.cli", *command[1:]]
        with (folder / "output.log").open("ab") as output:
            process = subprocess.Popen(
                ["sh", "-c", _WRAPPER, "sh", str(folder / "exit"), *command],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **spec.env},
                start_new_session=True,
            )
        meta = {"pid": process.pid, "run_id": run_id, "lab_id": self.lab_id, "started": time.time()}
        atomic_write_text(folder / "meta.json", json.dumps(meta))
        return handle

    def price_per_hour(self, gpu_type: str | None) -> float:
        """The notional ``hourly_price`` (the same for every ``gpu_type``)."""
        return self.hourly_price

    def status(self, handle: Handle) -> ComputeState:
        """From the exit file if the command ended, else from whether its process still runs."""
        folder = self.root / handle.resource_id
        if (folder / "exit").exists():
            return ComputeState.SUCCEEDED if (folder / "exit").read_text().strip() == "0" else ComputeState.FAILED
        meta = self._meta(handle)
        if meta is None:
            return ComputeState.GONE
        return ComputeState.RUNNING if pid_alive(meta["pid"]) else ComputeState.FAILED

    def logs(self, handle: Handle, tail: int = 100) -> list[str]:
        """The last lines of the process's combined output."""
        path = self.root / handle.resource_id / "output.log"
        return path.read_text(errors="replace").splitlines()[-tail:] if path.exists() else []

    def terminate(self, handle: Handle) -> None:
        """SIGTERM the process group, SIGKILL it after 5 s; mark the resource ended."""
        meta = self._meta(handle)
        if meta is None or not pid_alive(meta["pid"]):
            return
        _signal_group(meta["pid"], signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        while pid_alive(meta["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(meta["pid"]):
            _signal_group(meta["pid"], signal.SIGKILL)

    def list_owned(self) -> list[Owned]:
        """Resources of this lab whose process still runs."""
        owned = []
        for meta_file in sorted(self.root.glob("*/meta.json")):
            meta = json.loads(meta_file.read_text())
            if meta.get("lab_id") == self.lab_id and pid_alive(meta["pid"]):
                key = meta_file.parent.name
                owned.append(Owned(Handle(self.name, key), int(meta["run_id"]), key))
        return owned

    def cost_so_far(self, handle: Handle) -> float:
        """``hourly_price`` × hours since the start (to the exit, once ended)."""
        meta = self._meta(handle)
        if meta is None:
            return 0.0
        exit_file = self.root / handle.resource_id / "exit"
        end = exit_file.stat().st_mtime if exit_file.exists() else time.time()
        return self.hourly_price * max(end - meta["started"], 0.0) / 3600.0

    def _meta(self, handle: Handle) -> dict[str, Any] | None:
        path = self.root / handle.resource_id / "meta.json"
        return json.loads(path.read_text()) if path.exists() else None


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
