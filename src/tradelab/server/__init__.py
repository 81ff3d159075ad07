"""The control plane: a FastAPI app over a SQLAlchemy database (SQLite by default, Postgres in production),
and a worker process whose reconciler runs experiments on compute backends.

The database is the source of truth and the queue; the API and the worker share nothing else.
"""
