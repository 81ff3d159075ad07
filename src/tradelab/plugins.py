"""What the tool and reward registries (and config loaders) share: plugin entry points and field errors."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def field_errors(exc: ValidationError, root: str = "params") -> str:
    """A pydantic error as ``field: message; field: message`` (``root`` names an error on the whole model)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or root}: {e['msg']}" for e in exc.errors())


def parse_params(model: type[M], params: BaseModel | Mapping[str, Any] | None, error: type[Exception], owner: str) -> M:
    """Validate plugin parameters: a ``model`` instance as is, a mapping into one, None into the defaults.

    :param error: the exception raised for invalid parameters; its message starts with
        ``invalid parameters for <owner>:`` and names each invalid field.
    """
    if isinstance(params, model):
        return params
    try:
        return model.model_validate(dict(params or {}))
    except ValidationError as exc:
        raise error(f"invalid parameters for {owner}: {field_errors(exc)}") from None


def describe_entry_point(entry_point: importlib.metadata.EntryPoint) -> tuple[str, str]:
    """``(origin, where)``: ``entry-point:<distribution>``, and a phrase naming the entry point in warnings."""
    origin = f"entry-point:{entry_point.dist.name if entry_point.dist else entry_point.value}"
    return origin, f"entry point {entry_point.name} = {entry_point.value} ({origin})"


def entry_point_objects(entry_point: importlib.metadata.EntryPoint) -> list[Any]:
    """What an entry point exports, as a list: a list or tuple export means several plugins.

    :raises Exception: whatever importing the plugin raises (registries turn it into a warning).
    """
    loaded = entry_point.load()
    return list(loaded) if isinstance(loaded, list | tuple) else [loaded]
