"""Real Open Images metadata shipped with the package (CC BY 4.0, see the files' origin in README)."""

from pathlib import Path

RESOURCES = Path(__file__).resolve().parent
HIERARCHY_JSON = RESOURCES / "oid-challenge-2019-label300-segmentable-hierarchy.json"
CLASSES_CSV = RESOURCES / "oid-challenge-2019-classes-description-segmentable300.csv"
TRAIN_MASK_COUNTS_CSV = RESOURCES / "train-mask-counts-per-class.csv"
