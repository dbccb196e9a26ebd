"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def tiny_cytoself_builder():
    """The module test_feature_spectrum.py, which builds the tiny cytoself run of the CLI tests
    (`build_tiny_run`), loaded once under its own name."""
    name = "_statcell_cli_tiny_cytoself_run"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("test_feature_spectrum.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


@pytest.fixture(scope="session")
def cytoself_builder():
    """`tiny_cytoself_builder` as a fixture."""
    return tiny_cytoself_builder()
