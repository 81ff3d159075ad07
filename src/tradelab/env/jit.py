"""How the env compiles its hot code: numba's ``njit``, cached on disk, with numpy's error model.

``error_model="numpy"`` lets a division by zero give ``inf``/``NaN`` like numpy instead of raising,
which removes a branch from every division (the code guards the divisions that matter).
Helpers are inlined into their callers at numba's IR level (``inline="always"``): a call between
compiled functions otherwise costs tens of nanoseconds (argument passing, reference counting of the
array views), more than the helper's own arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba

#: Decorator of the compiled entry points (the functions Python calls).
jit = numba.njit(cache=True, error_model="numpy")
#: Decorator of the compiled helpers (called only from other compiled functions, inlined into them).
inline = numba.njit(cache=True, error_model="numpy", inline="always")


def entry_point(dispatcher: Any, args: tuple[Any, ...]) -> Callable[..., Any]:
    """The compiled function of ``dispatcher`` for the types of ``args``, callable without numba's dispatch.

    A call through the dispatcher finds the argument types first (about 30 ns per array argument);
    the entry point skips that. Only call it with arguments of exactly these types (dtype, dimensions,
    layout, read-only flag): it does not check them. Falls back to the dispatcher itself when numba
    does not expose the entry point.
    """
    types = tuple(numba.typeof(arg) for arg in args)
    dispatcher.compile(types)
    overload = getattr(dispatcher, "overloads", {}).get(types)
    return getattr(overload, "entry_point", dispatcher)
