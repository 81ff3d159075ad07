"""The error the tools layer raises for unknown tools, bad parameters and misbehaving tools."""

from __future__ import annotations


class ToolError(ValueError):
    """A tool cannot be found, its parameters are invalid, or its output breaks the contract.

    The message names the tool and, where it applies, the parameter field or the bar.
    """
