"""predict refuses what it used to accept silently (issue 11, part 2): exports given in swapped order or of
another class set, and NaN / infinite / out-of-range scores or unknown class ids from a model, each an error
naming the export (layer) and the image."""

from __future__ import annotations

import numpy as np
import pytest

from hierseg import features as F
from hierseg.errors import WorkError
from hierseg.evaluation.model_outputs import image_detections
from hierseg.hierarchy import HierarchyError
from hierseg.label_map import LabelMap

PERSON, MAN, TOY, TEDDY = "/m/01g317", "/m/04yx4", "/m/0138tl", "/m/0kmg4"


def test_swapped_or_foreign_layer_exports_are_refused(hierarchy):
    layer0, layer1 = hierarchy.layers()
    hierarchy.check_layer_order([layer0, layer1], ["--layer0 a", "--layer1 b"])  # the right order passes
    with pytest.raises(
        HierarchyError,
        match=r"^--layer0 b predicts Person \(/m/01g317\), a parent of Man \(/m/04yx4\) "
        r"of --layer1 a: the exports are given in swapped order\?$",
    ):
        hierarchy.check_layer_order([[MAN, TEDDY], [PERSON, TOY]], ["--layer1 a", "--layer0 b"])
    with pytest.raises(HierarchyError, match=r"^--layer1 b: 1 class\(es\) not in the hierarchy \(first: /m/nope\)"):
        hierarchy.check_layer_order([[PERSON], [MAN, "/m/nope"]], ["--layer0 a", "--layer1 b"])


def outputs(scores, classes) -> dict:
    n = len(scores)
    return {
        F.NUM_DETECTIONS: np.array([n]),
        F.DET_SCORES: np.array([scores], np.float32),
        F.DET_CLASSES: np.array([classes], np.int32),
        F.DET_BOXES: np.tile(np.array([0.1, 0.1, 0.6, 0.6], np.float32), (1, n, 1)),
        F.DET_MASKS: np.ones((1, n, 4, 4), np.float32),
    }


LABELS = LabelMap.from_classes([PERSON, TOY], {PERSON: "Person", TOY: "Toy"})


@pytest.mark.parametrize(
    "scores, classes, message",
    [
        ([0.9, np.nan], [1, 2], "exports/l0: image 00ab: instance 1: score nan is not a number in [0, 1]"),
        ([np.inf, 0.5], [1, 2], "exports/l0: image 00ab: instance 0: score inf is not a number in [0, 1]"),
        ([0.5, 1.5], [1, 2], "exports/l0: image 00ab: instance 1: score 1.5 is not a number in [0, 1]"),
        ([0.5, -0.1], [1, 2], "exports/l0: image 00ab: instance 1: score -0.10000000149011612 is not a number"),
        ([0.5, 0.7], [1, 3], "exports/l0: image 00ab: instance 1: class id 3 is not in the label map (1..2)"),
        ([0.5, 0.7], [-1, 1], "exports/l0: image 00ab: instance 0: class id -1 is not in the label map (1..2)"),
    ],
)
def test_bad_model_outputs_name_the_export_and_image(scores, classes, message):
    with pytest.raises(WorkError) as e:
        image_detections(outputs(scores, classes), 0, "00ab", 20, 30, LABELS, min_score=0.3, source="exports/l0")
    assert str(e.value).startswith(message)


def test_good_outputs_still_decode():
    det = image_detections(outputs([0.9, 0.2], [1, 2]), 0, "00ab", 20, 30, LABELS, min_score=0.3, source="x")
    assert det.classes == [PERSON] and len(det.rles) == 1
