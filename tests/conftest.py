"""Shared fixtures: a tiny synthetic Open Images dataset built through the real code, once a session.

Each fixture below belongs to the part of the project that builds it; tests of later stages start
from the earlier stage's real output rather than hand-made stand-ins.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
OID_DATA = REPO / "tests" / "data" / "oid"  # copies of the real Open Images metadata (see its README)


@pytest.fixture(scope="session")
def oid_data() -> Path:
    """Real Open Images metadata files (hierarchies, class names, mask counts, format fixtures)."""
    return OID_DATA


@pytest.fixture(scope="session")
def hierarchy():
    """The real 300-class challenge 2019 segmentable hierarchy."""
    from hierseg.hierarchy import Hierarchy

    return Hierarchy.from_files(
        str(OID_DATA / "oid-challenge-2019-label300-segmentable-hierarchy.json"),
        str(OID_DATA / "oid-challenge-2019-classes-description-segmentable300.csv"),
    )


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic Open Images dataset in the challenge 2019 folder layout (owned by hierseg.synth)."""
    from hierseg.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(str(out), num_images=60, seed=0)
    return out


@pytest.fixture(scope="session")
def prepared_dir(synth_dir, tmp_path_factory) -> Path:
    """`hierseg prepare` output for ``synth_dir``: OUT/layer0, OUT/layer1 (owned by data_prep)."""
    from data_prep.config import PrepareConfig
    from data_prep.prepare import prepare

    out = tmp_path_factory.mktemp("prepared")
    prepare(str(synth_dir), str(out), PrepareConfig(), num_workers=1, show_progress=False)
    return out
