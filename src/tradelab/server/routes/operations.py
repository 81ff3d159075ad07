"""The operations routers: runs, what they report (status, metrics, logs), their artifacts and live events."""

from __future__ import annotations

from fastapi import APIRouter

#: Mounted under ``/api`` by :func:`tradelab.server.app.create_app`.
routers: list[APIRouter] = []
