"""Fixtures for the ingest tests; the row and file factories are in ingest_helpers.py."""

from pathlib import Path

import pytest


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A fresh workspace folder (created by the first ingest)."""
    return tmp_path / "ws"
