"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import pytest

from tests._support.cytoself_run import build_tiny_run


@pytest.fixture(scope="session")
def tiny_cytoself(tmp_path_factory):
    """``(run_dir, data_dir)`` of the tiny trained cytoself run (`build_tiny_run`), built once per session."""
    return build_tiny_run(tmp_path_factory.getbasetemp() / "cytoself_tiny")
