"""``tradelab serverless``: the start command of the lab's RunPod serverless endpoint."""

from __future__ import annotations

import typer


def serverless(ctx: typer.Context) -> None:
    """Serve RunPod serverless jobs (backtest, features, baseline) with the lab's handler.

    The SDK's own flags pass through: ``--test_input '{"input": {...}}'`` runs one job locally,
    ``--rp_serve_api --rp_api_port 8000`` serves a local endpoint.
    """
    import runpod

    from tradelab.compute.runpod_serverless import handler

    runpod.serverless.start({"handler": handler})  # parses its flags from sys.argv itself
