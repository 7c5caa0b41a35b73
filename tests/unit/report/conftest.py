"""Fixtures for the report unit tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.report.report_synth import build_run


@pytest.fixture
def write_run() -> Callable[..., Path]:
    """``write_run(**options)`` writes a synthetic run folder (see report_synth.build_run)."""
    return build_run
