from __future__ import annotations

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests" / "vectors" / "generated").glob("*.json"))
POLICIES = ROOT / "policies"

try:  # keep hypothesis' files inside aegis-py/ (git-ignored), not in the repo root
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(str(ROOT / "aegis-py" / ".hypothesis"))
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def root() -> pathlib.Path:
    return ROOT
