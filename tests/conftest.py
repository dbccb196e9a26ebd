"""Shared fixtures. Real data lives in ../shared/data (relative to the project root)."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # tests run on the CPU everywhere
os.environ.setdefault("MPLBACKEND", "Agg")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def shared_data_path(*parts: str) -> Path:
    """Path under ../shared/data; skips the calling test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path}")
    return path


@pytest.fixture
def shared_data():
    """Function returning a path under ../shared/data, skipping the test when absent."""
    return shared_data_path


def pytest_collection_modifyitems(config, items):
    if config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="science experiment: run with `make science`")
    for item in items:
        if "science" in item.keywords:
            item.add_marker(skip)
