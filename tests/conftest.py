import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest


@pytest.fixture(autouse=True)
def _deterministic_threads():
    """Tests run with the machine's default threads; nothing here depends on thread count."""
    yield


@pytest.fixture
def tmp_runs(tmp_path):
    return tmp_path / "runs"
