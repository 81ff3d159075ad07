"""Bearer tokens: random secrets handed out once, stored only as their SHA-256 digest.

``admin`` tokens may do anything; ``run`` tokens belong to one attempt of one run and may only report on it
(status, heartbeats, metrics, logs) while that attempt is open: once the run is queued again, moves on to another
attempt or ends, its token is refused, so a token left in a stopped pod's environment (which RunPod's API shows to
anyone with the account key) cannot change what the run reported. A token's secret never appears in a response
after its creation, nor in a log.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.orm import Session

from tradelab.server.models import Run, RunState, Token

PREFIX = "tl_"

#: The states in which a run has an open attempt, whose token may report.
OPEN_STATES = (RunState.STARTING, RunState.RUNNING)


def digest(secret: str) -> str:
    """The stored form of a token secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(session: Session, name: str, role: str = "admin", run_id: int | None = None) -> str:
    """Create a token and return its secret (shown once; only its digest is stored).

    :param role: ``admin`` or ``run``: then ``run_id`` names the run it may report on, and the token is valid for
        the run's current attempt only (the worker issues one per attempt, after the claim that opens it).
    :raises ValueError: a role other than these, a ``run_id`` missing or given for an admin token, an unknown run.
    """
    if role not in ("admin", "run") or (role == "run") != (run_id is not None):
        raise ValueError(f"a {role!r} token {'needs' if role == 'run' else 'takes no'} run_id")
    attempt = None
    if run_id is not None:
        run = session.get(Run, run_id)
        if run is None:
            raise ValueError(f"run_id {run_id}: no such run")
        attempt = run.attempts
    secret = PREFIX + secrets.token_urlsafe(32)
    session.add(Token(name=name, role=role, digest=digest(secret), run_id=run_id, attempt=attempt))
    session.flush()
    return secret


def run_token_open(token: Token, run: Run) -> bool:
    """Whether run token ``token`` may still report on ``run``: the run is starting or running in the attempt the
    token was issued for."""
    return token.run_id == run.id and token.attempt == run.attempts and run.state in OPEN_STATES
