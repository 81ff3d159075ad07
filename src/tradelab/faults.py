"""Named fault points: the moments where a crash leaves work half done, so a test can kill the process exactly
there (not "about then", as a sleep would) and check that a restarted process finishes or undoes that work.

Code calls :func:`fault_point` at each such moment; it does nothing unless a test armed the name with
:func:`armed`. The names are listed in :data:`POINTS`, so a test cannot arm a point that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: Every fault point, with the moment it marks.
POINTS: dict[str, str] = {
    "local.meta_written": "the local backend recorded a start (meta.json), its process not spawned yet",
    "local.spawned": "the local backend spawned a run's process, the start not returned yet",
    "worker.compute_started": "the backend started a run's compute, its id not recorded on the run yet",
}
_armed: dict[str, Callable[[], None]] = {}


class Killed(BaseException):
    """The process dies here: nothing after the fault point runs (a BaseException, so no handler catches it)."""


def _die() -> None:
    raise Killed


def fault_point(name: str) -> None:
    """Run what a test armed at ``name`` (by default: raise :class:`Killed`); nothing when it is not armed."""
    action = _armed.get(name)
    if action is not None:
        action()


@contextmanager
def armed(name: str, action: Callable[[], None] = _die) -> Iterator[None]:
    """Arm fault point ``name`` with ``action`` for the block.

    :raises KeyError: ``name`` is not a fault point (see :data:`POINTS`).
    """
    if name not in POINTS:
        raise KeyError(f"no fault point {name!r}; known: {', '.join(sorted(POINTS))}")
    _armed[name] = action
    try:
        yield
    finally:
        _armed.pop(name, None)
