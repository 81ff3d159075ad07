"""The catalog routers: what runs are made of (datasets, tools, env configs, experiments, budgets, compute)."""

from __future__ import annotations

from fastapi import APIRouter

from tradelab.server.routes import budgets, compute, datasets, env_configs, experiments, schemas, tools

#: Mounted under ``/api`` by :func:`tradelab.server.app.create_app`.
routers: list[APIRouter] = [
    datasets.router,
    tools.router,
    env_configs.router,
    experiments.router,
    schemas.router,
    budgets.router,
    compute.router,
]
