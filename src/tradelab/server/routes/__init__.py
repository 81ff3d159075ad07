"""One router per resource, mounted under ``/api`` (health checks at the root)."""
