"""Writing Open Images Challenge 2019 instance segmentation submissions (the Kaggle format).

The file is a CSV ``ImageID,ImageWidth,ImageHeight,PredictionString``; the string holds
space-separated ``MID score EncodedMask`` triples (:func:`hierseg.oid.mask_codec.oid_mask_from_rle`,
masks at the original image size). Note ImageWidth comes *before* ImageHeight.

The official evaluator does not expand predictions up the hierarchy, so every instance is written
once for every class of its label path and all their ancestors (:meth:`Hierarchy.expand_positive`):
a (Person, Man) instance as Man and as Person, a Teddy bear as Teddy bear, Toy, Bear and Carnivore,
all with the instance's score and mask. Every image of the image set gets a row, with an empty
PredictionString when nothing was found.

Streaming: one image's detections are in memory at a time; masks are never decoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from ensembles.config import SubmissionConfig
from hierseg.detections import Detections
from hierseg.hierarchy import Hierarchy
from hierseg.oid.mask_codec import oid_mask_from_rle
from hierseg.prediction_file import SubmissionCsvWriter, check_scores


@dataclass
class SubmissionStats:
    """What :func:`write_submission` wrote."""

    images: int = 0  # rows
    images_with_predictions: int = 0  # rows with a non-empty PredictionString
    empty_rows: int = 0  # images of the set without predictions
    instances: int = 0  # instances above the threshold, before expansion to ancestors
    triples: int = 0  # (MID, score, mask) triples written
    capped: int = 0  # triples dropped by max_per_image


def instance_classes(hierarchy: Hierarchy, mid: str, label_path: Iterable[str] = ()) -> tuple[str, ...]:
    """Every class an instance is submitted as: each class of its label path (or its class when the
    path is empty) and all of their ancestors, without repeats; the instance's own class first."""
    out: dict[str, None] = {}
    for c in (mid, *label_path):
        if c not in hierarchy:
            raise ValueError(f"class {c} is not in the hierarchy")
        out.update(dict.fromkeys(hierarchy.expand_positive(c)))
    return tuple(out)


def submission_triples(
    det: Detections, hierarchy: Hierarchy, config: SubmissionConfig | None = None
) -> tuple[list[tuple[str, float, str]], int, int]:
    """One image's triples ``(MID, score, EncodedMask)``, highest scores first.

    Returns:
      (triples, number of instances kept by the threshold, number of triples dropped by the cap).
    Raises:
      ValueError: for a score outside [0, 1], a mask whose size is not the image's, or an unknown class.
    """
    config = config or SubmissionConfig()
    check_scores(det.scores, f"image {det.image_id}")
    keep = [k for k in np.argsort(-det.scores, kind="stable") if det.scores[k] >= config.score_threshold]
    triples: list[tuple[str, float, str]] = []
    for k in keep:
        rle = det.rles[k]
        if [int(v) for v in rle["size"]] != [det.height, det.width]:
            raise ValueError(
                f"image {det.image_id}: mask {k} has size {list(rle['size'])}, "
                f"the image is [{det.height}, {det.width}] (height, width)"
            )
        try:
            classes = instance_classes(hierarchy, det.classes[k], det.label_paths[k])
        except ValueError as e:
            raise ValueError(f"image {det.image_id}: instance {k}: {e}") from None
        encoded = oid_mask_from_rle(rle)
        score = float(det.scores[k])
        triples.extend((mid, score, encoded) for mid in classes)
    capped = 0
    if config.max_per_image and len(triples) > config.max_per_image:
        capped = len(triples) - config.max_per_image
        triples = triples[: config.max_per_image]  # instances are already in descending score order
    return triples, len(keep), capped


def write_submission(
    detections: Iterable[Detections],
    path: str,
    hierarchy: Hierarchy,
    *,
    image_sizes: Mapping[str, tuple[int, int]] | None = None,
    config: SubmissionConfig | None = None,
    show_progress: bool = False,
) -> SubmissionStats:
    """Writes a challenge submission CSV, atomically.

    Args:
      detections: per-image detections (any order), masks at the original image size.
      path: the CSV to write.
      hierarchy: for the ancestor copies.
      image_sizes: the image set, ImageID -> (height, width). Every image of it gets a row (images
        without detections an empty one, after the others, in the mapping's order); detections of an
        image outside it, or of a different size, are an error. None: one row per image of ``detections``.
      config: score threshold and per-image cap.
    Raises:
      ValueError: naming the image, for an image twice, outside the set, or of the wrong size, and for
        the problems listed in :func:`submission_triples`. No file is left behind.
    """
    from tqdm import tqdm

    config = config or SubmissionConfig()
    stats = SubmissionStats()
    written: set[str] = set()
    with SubmissionCsvWriter(path) as out:
        for det in tqdm(detections, desc="submission", unit="img", disable=not show_progress):
            if det.image_id in written:
                raise ValueError(f"image {det.image_id}: detections given twice")
            if image_sizes is not None:
                if det.image_id not in image_sizes:
                    raise ValueError(f"image {det.image_id}: has detections but is not in the image set")
                if tuple(image_sizes[det.image_id]) != (det.height, det.width):
                    h, w = image_sizes[det.image_id]
                    raise ValueError(
                        f"image {det.image_id}: detections are for {det.height}x{det.width}, "
                        f"the image is {h}x{w} (height x width); masks must be at the "
                        "original resolution"
                    )
            triples, kept, capped = submission_triples(det, hierarchy, config)
            out.write_row(det.image_id, det.height, det.width, triples)
            written.add(det.image_id)
            stats.images += 1
            stats.images_with_predictions += bool(triples)
            stats.empty_rows += not triples
            stats.instances += kept
            stats.triples += len(triples)
            stats.capped += capped
        for image_id, (h, w) in (image_sizes or {}).items():
            if image_id not in written:
                out.write_row(image_id, h, w, ())
                stats.images += 1
                stats.empty_rows += 1
    return stats
