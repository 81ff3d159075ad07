"""The local backend: each run is a child process in its own session, tracked through files on disk.

A resource is a folder ``<root>/<idempotency key>/`` holding:

- ``lock``: locked (``flock``) by the worker while it starts the process, then by the process's wrapper shell,
  which inherits the lock and holds it for as long as it lives. A held lock is a live process, found even when
  the worker died before it learnt the process's pid; a free one is a process that ended (or never started).
- ``meta.json``: run id, lab id, start time; written before the process is spawned.
- ``pid``: the wrapper's pid (its process group), written by the wrapper itself as it starts.
- ``output.log``, and once the command ends ``exit`` with its status.

A worker killed with ``kill -9`` at any point of a start therefore finds its process again after a restart
(adopts it), and never starts a second one for the same key: a key whose process runs, or ran, is not started
again; one whose worker died before spawning it is spawned then.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, ClassVar

from tradelab.atomic import atomic_write_text
from tradelab.compute.base import ComputeBackend, ComputeError, ComputeSpec, ComputeState, Handle, Owned
from tradelab.faults import fault_point

#: Records its pid, runs the command (without the lock: only the wrapper holds it), then writes its exit status
#: beside it (even when the worker that started it is gone). Arguments: folder, lock fd, command.
_WRAPPER = (
    'folder="$1"; lock="$2"; shift 2; echo $$ > "$folder/pid.tmp" && mv "$folder/pid.tmp" "$folder/pid"; '
    'eval \'"$@"\' "$lock>&-"; status=$?; '
    'echo "$status" > "$folder/exit.tmp" && mv "$folder/exit.tmp" "$folder/exit"'
)
#: How long :meth:`LocalBackend.terminate` waits for a process to end after SIGTERM, then after SIGKILL.
_GRACE_S = 5.0


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
        """Start the command in a new session (its own process group); a key whose process runs or ran returns
        that resource instead."""
        folder = self.root / idempotency_key
        handle = Handle(self.name, idempotency_key)
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "lock").open("a") as lock:
            if not _lock(lock) or (folder / "pid").exists() or (folder / "exit").exists():
                return handle  # its process runs (it holds the lock), or it ran
            meta = {"run_id": run_id, "lab_id": self.lab_id, "started": time.time()}
            atomic_write_text(folder / "meta.json", json.dumps(meta))
            fault_point("local.meta_written")
            command = spec.command
            if command[:1] == ["tradelab"]:  # the lab's CLI, under the worker's own interpreter
                command = [sys.executable, "-m", "tradelab.cli", *command[1:]]
            with (folder / "output.log").open("ab") as output:
                subprocess.Popen(
                    ["sh", "-c", _WRAPPER, "sh", str(folder), str(lock.fileno()), *command],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **spec.env},
                    start_new_session=True,
                    pass_fds=(lock.fileno(),),  # the wrapper holds the lock from here on
                )
            fault_point("local.spawned")
        return handle

    def find(self, idempotency_key: str) -> Handle | None:
        """The resource of ``idempotency_key`` once its process was spawned, running or ended."""
        handle = Handle(self.name, idempotency_key)
        meta = self._meta(handle)
        mine = meta is not None and meta.get("lab_id") == self.lab_id
        return handle if mine and self.status(handle) != ComputeState.GONE else None

    def price_per_hour(self, gpu_type: str | None) -> float:
        """The notional ``hourly_price`` (the same for every ``gpu_type``)."""
        return self.hourly_price

    def status(self, handle: Handle) -> ComputeState:
        """From the exit file if the command ended, else from whether its wrapper still holds the lock."""
        folder = self.root / handle.resource_id
        if (folder / "exit").exists():
            return ComputeState.SUCCEEDED if (folder / "exit").read_text().strip() == "0" else ComputeState.FAILED
        if not (folder / "meta.json").exists():
            return ComputeState.GONE
        if _held(folder):
            return ComputeState.RUNNING
        return ComputeState.FAILED if (folder / "pid").exists() else ComputeState.GONE  # killed, or never spawned

    def logs(self, handle: Handle, tail: int = 100) -> list[str]:
        """The last lines of the process's combined output."""
        path = self.root / handle.resource_id / "output.log"
        return path.read_text(errors="replace").splitlines()[-tail:] if path.exists() else []

    def terminate(self, handle: Handle) -> None:
        """SIGTERM the process group, SIGKILL it after 5 s; return once it ended.

        :raises ComputeError: (transient) the process was spawned a moment ago and has not recorded its pid yet,
            or it outlived its SIGKILL.
        """
        folder = self.root / handle.resource_id
        if not _wait(lambda: (folder / "pid").exists() or not _held(folder)):
            raise ComputeError(f"process {handle.resource_id} has not recorded its pid yet", transient=True)
        if not _held(folder):
            return
        pid = int((folder / "pid").read_text())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            _signal_group(pid, sig)
            if _wait(lambda: not _held(folder)):
                return
        raise ComputeError(f"process {handle.resource_id} (pid {pid}) outlived SIGKILL", transient=True)

    def list_owned(self) -> list[Owned]:
        """Resources of this lab whose process still runs."""
        owned = []
        for meta_file in sorted(self.root.glob("*/meta.json")):
            meta = json.loads(meta_file.read_text())
            if meta.get("lab_id") == self.lab_id and _held(meta_file.parent):
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


def _lock(lock: IO[Any]) -> bool:
    """Take ``lock`` (an open file) exclusively without waiting; whether it was free."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _held(folder: Path) -> bool:
    """Whether a process (or a start in progress) holds the resource's lock."""
    try:
        with (folder / "lock").open("rb") as lock:
            return not _lock(lock)  # closing the file releases a lock taken here
    except FileNotFoundError:
        return False


def _wait(done: Callable[[], bool]) -> bool:
    """Poll ``done()`` for up to :data:`_GRACE_S`; whether it held."""
    deadline = time.monotonic() + _GRACE_S
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
