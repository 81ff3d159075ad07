"""Bearer tokens: random secrets handed out once, stored only as their SHA-256 digest.

``admin`` tokens may do anything; ``run`` tokens belong to one run and may only report on it (status,
heartbeats, metrics, logs). A token's secret never appears in a response after its creation, nor in a log.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.orm import Session

from tradelab.server.models import Token

PREFIX = "tl_"


def digest(secret: str) -> str:
    """The stored form of a token secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(session: Session, name: str, role: str = "admin", run_id: int | None = None) -> str:
    """Create a token and return its secret (shown once; only its digest is stored).

    :param role: ``admin`` or ``run`` (then ``run_id`` names the run it may report on).
    """
    if role not in ("admin", "run") or (role == "run") != (run_id is not None):
        raise ValueError(f"a {role!r} token {'needs' if role == 'run' else 'takes no'} run_id")
    secret = PREFIX + secrets.token_urlsafe(32)
    session.add(Token(name=name, role=role, digest=digest(secret), run_id=run_id))
    session.flush()
    return secret
