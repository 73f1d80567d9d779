"""Server tests run once per HTTP/2 engine (see ``tests/conftest.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _on_each_engine(http2_engine: str) -> str:
    return http2_engine
