"""The catalog routers: what runs are made of (datasets, tools, env configs, experiments, budgets, compute)."""

from __future__ import annotations

from fastapi import APIRouter

#: Mounted under ``/api`` by :func:`tradelab.server.app.create_app`.
routers: list[APIRouter] = []
