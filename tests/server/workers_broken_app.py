"""A server factory whose module fails at import (tests/server/test_workers.py)."""

raise RuntimeError("workers_broken_app fails at import on purpose")


def make_server() -> None:  # never reached
    """Never called."""
