"""Data tests never touch ~/.cache: every test gets its own decoded-image cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlestar.data.cache import CACHE_ENV


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``$MLESTAR_CACHE_DIR`` at a fresh folder under ``tmp_path`` and return it."""
    folder = tmp_path / "env-cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder
