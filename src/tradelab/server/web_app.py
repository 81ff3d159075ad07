"""The built dashboard (``frontend/dist``) served by the control plane at ``/``.

Assets carry a content hash in their names (Vite), so they are cached for a year; each is gzipped once, in
memory, for clients that accept it (1.5 MB of scripts and styles become about a third of that).
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse

#: First path segments the dashboard's fallback leaves alone: the API's own (an unknown one stays a 404).
_NOT_WEB_APP = frozenset({"api", "health", "ready", "docs", "redoc", "openapi.json"})
_IMMUTABLE = "public, max-age=31536000, immutable"
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".json": "application/json"}
#: Below this size gzip saves nothing worth a header.
_MIN_GZIP_BYTES = 1024


def serve_web_app(app: FastAPI, folder: Path) -> None:
    """Serve the single-page app built into ``folder``: ``/assets/...`` as cached files, a file of the folder's top
    level as itself, any other GET outside the API as ``index.html`` (its router reads the path). Without
    ``index.html``, ``/`` tells how to build it."""
    index = folder / "index.html"
    if not index.is_file():

        async def not_built() -> JSONResponse:
            detail = "the dashboard is not built: run `make setup` (or set TRADELAB_WEB_DIR); the API is at /api"
            return JSONResponse({"detail": detail, "docs": "/docs"})

        app.get("/", include_in_schema=False)(not_built)
        return
    root = folder.resolve()
    assets = root / "assets"

    async def asset(path: str, request: Request) -> Response:
        file = (assets / path).resolve()
        if not file.is_file() or not file.is_relative_to(assets):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
        stat = file.stat()
        media_type = _MEDIA_TYPES.get(file.suffix)
        headers = {"Cache-Control": _IMMUTABLE, "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", "") and stat.st_size >= _MIN_GZIP_BYTES:
            body = _gzipped(file, stat.st_mtime_ns, stat.st_size)
            return Response(body, media_type=media_type, headers={**headers, "Content-Encoding": "gzip"})
        return FileResponse(file, media_type=media_type, headers=headers)

    async def web_app(path: str) -> FileResponse:
        if path.split("/", 1)[0] in _NOT_WEB_APP:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
        file = (root / path).resolve()
        if path and file.is_file() and file.parent == root:  # favicon.ico and the like, never outside the folder
            return FileResponse(file)
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    app.get("/assets/{path:path}", include_in_schema=False)(asset)
    app.get("/{path:path}", include_in_schema=False)(web_app)


@lru_cache(maxsize=256)
def _gzipped(file: Path, mtime_ns: int, size: int) -> bytes:
    """The gzip of one asset, keyed by its version (a rebuilt file is compressed again)."""
    return gzip.compress(file.read_bytes(), compresslevel=6)
