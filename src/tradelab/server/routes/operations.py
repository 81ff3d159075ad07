"""The operations routers: runs, what they report (status, metrics, logs), their artifacts, live events and the
dashboard's summary."""

from __future__ import annotations

from fastapi import APIRouter

from tradelab.server.routes import artifacts, dashboard, events, jobs, logs, metrics, runs

#: Mounted under ``/api`` by :func:`tradelab.server.app.create_app`.
routers: list[APIRouter] = [
    runs.router,
    logs.router,
    jobs.router,
    metrics.router,
    artifacts.router,
    events.router,
    dashboard.router,
]
