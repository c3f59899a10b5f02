"""Merging Layer0 (parent-class) and Layer1 (child-class) detections into parent-child labeled instances.

The Layer0 model predicts depth-0 classes (Person, Toy, Carnivore, ...), the Layer1 model their
descendants (Man, Teddy bear, Brown bear, ...). The same object found by both becomes one instance
whose label path runs from the Layer0 class down to the Layer1 class through the hierarchy:
(Person, Man), (Toy, Teddy bear), (Carnivore, Bear, Brown bear).

Rule of :func:`ensemble_image`, per image:

1. Detections below ``min_layer{0,1}_score`` are dropped.
2. A Layer1 detection *can* match a Layer0 detection only if the Layer0 class is an ancestor of the
   Layer1 class (so a child is never placed under a non-ancestor) and their mask IoU is at least
   ``iou_threshold``.
3. Layer1 detections are visited by descending score (ties: input order); each takes, among the
   Layer0 detections still free that it can match, the one with the highest IoU (ties: higher score,
   then input order). A Layer0 detection is used at most once, a Layer1 detection matches at most one.
4. A match yields one instance of the Layer1 class with the path from the Layer0 class down to it
   (:meth:`Hierarchy.path_down`, intermediate classes filled in); its mask and score follow
   ``mask_source`` and ``score_source`` (:class:`~ensembles.config.EnsembleConfig`).
5. An unmatched Layer0 detection keeps its class, its path being the class itself (or the path from
   its nearest depth-0 ancestor when it is not a depth-0 class).
6. An unmatched Layer1 detection keeps its class and gets its full ancestor path from its nearest
   depth-0 ancestor (:meth:`Hierarchy.ancestor_in`): Teddy bear -> (Toy, Teddy bear).

The output lists instances by descending score (stable).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ensembles.config import EnsembleConfig
from hierseg.detections import Detections
from hierseg.hierarchy import Hierarchy
from hierseg.rle import merge_rles, pairwise_iou, rle_boxes


def _check_classes(dets: Detections, hierarchy: Hierarchy, which: str) -> None:
    for mid in dets.classes:
        if mid not in hierarchy:
            raise ValueError(f"image {dets.image_id}: {which} class {mid} is not in the hierarchy")


def root_path(hierarchy: Hierarchy, mid: str) -> tuple[str, ...]:
    """The label path from the nearest depth-0 ancestor of ``mid`` (or ``mid`` itself) down to ``mid``."""
    root = hierarchy.ancestor_in(mid, hierarchy.roots())
    return hierarchy.path_down(root, mid)


def match_layers(
    layer0: Detections, layer1: Detections, hierarchy: Hierarchy, iou_threshold: float
) -> list[tuple[int, int]]:
    """The (layer1 index, layer0 index) matches of one image, by the rule in the module docstring."""
    if not len(layer0) or not len(layer1):
        return []
    iou = pairwise_iou(layer1.rles, layer0.rles)  # [N1, N0]
    ancestors = {c: hierarchy.ancestors(c) for c in set(layer1.classes)}
    allowed = np.array([[c0 in ancestors[c1] for c0 in layer0.classes] for c1 in layer1.classes], dtype=bool).reshape(
        iou.shape
    )
    candidate = allowed & (iou >= iou_threshold)
    free = np.ones(len(layer0), bool)
    matches = []
    for i in np.argsort(-layer1.scores, kind="stable"):
        options = np.flatnonzero(candidate[i] & free)
        if not len(options):
            continue
        # Highest IoU, then higher Layer0 score, then lower index (lexsort: last key is primary).
        best = options[np.lexsort((options, -layer0.scores[options], -iou[i, options]))[0]]
        free[best] = False
        matches.append((int(i), int(best)))
    return matches


def _merged_mask(r0: dict, r1: dict, s0: float, s1: float, source: str) -> dict:
    if source == "layer1":
        return r1
    if source == "layer0":
        return r0
    if source == "union":
        return merge_rles([r0, r1])
    if source == "intersection":
        return merge_rles([r0, r1], intersect=True)
    if source == "average":
        # Score-weighted mean of two binary masks >= 0.5: inside both -> 1; inside one -> its weight.
        if s1 > s0:
            return r1
        if s0 > s1:
            return r0
        return merge_rles([r0, r1])
    raise ValueError(f"unknown mask_source {source!r}")


def _merged_score(s0: float, s1: float, source: str) -> float:
    table = {"child": s1, "parent": s0, "product": s0 * s1, "max": max(s0, s1), "mean": 0.5 * (s0 + s1)}
    if source not in table:
        raise ValueError(f"unknown score_source {source!r}")
    return float(table[source])


def ensemble_image(
    layer0: Detections, layer1: Detections, hierarchy: Hierarchy, config: EnsembleConfig | None = None
) -> Detections:
    """Merges one image's Layer0 and Layer1 detections into instances with label paths.

    Args:
      layer0, layer1: detections of the same image (same image_id, height and width), masks as RLEs at
        the original resolution, classes as MIDs of ``hierarchy``.
    Returns:
      Detections of the image with ``label_paths`` filled, by descending score.
    Raises:
      ValueError: for different images or sizes, or a class not in the hierarchy.
    """
    config = config or EnsembleConfig()
    if layer0.image_id != layer1.image_id:
        raise ValueError(f"cannot ensemble different images {layer0.image_id} and {layer1.image_id}")
    if (layer0.height, layer0.width) != (layer1.height, layer1.width):
        raise ValueError(
            f"image {layer0.image_id}: Layer0 predictions are {layer0.height}x{layer0.width}, "
            f"Layer1 predictions {layer1.height}x{layer1.width} (height x width)"
        )
    _check_classes(layer0, hierarchy, "Layer0")
    _check_classes(layer1, hierarchy, "Layer1")
    layer0 = layer0[layer0.scores >= config.min_layer0_score]
    layer1 = layer1[layer1.scores >= config.min_layer1_score]
    matches = match_layers(layer0, layer1, hierarchy, config.iou_threshold)
    roots = {c: root_path(hierarchy, c) for c in set(layer0.classes) | set(layer1.classes)}

    merged = _matched_instances(layer0, layer1, matches, hierarchy, roots, config)
    free1 = np.setdiff1d(np.arange(len(layer1)), [i for i, _ in matches])
    free0 = np.setdiff1d(np.arange(len(layer0)), [j for _, j in matches])
    alone = [layer1[free1], layer0[free0]]
    for part in alone:
        part.label_paths = [roots[c] for c in part.classes]
    out = Detections.cat([merged, *alone])
    return out[np.argsort(-out.scores, kind="stable")]


def _matched_instances(
    layer0: Detections,
    layer1: Detections,
    matches: list[tuple[int, int]],
    hierarchy: Hierarchy,
    roots: dict[str, tuple[str, ...]],
    config: EnsembleConfig,
) -> Detections:
    """One instance per (layer1 index, layer0 index) match: the Layer1 class, the path from the Layer0
    class down to it, mask and score by ``config.mask_source`` / ``config.score_source``."""
    out = Detections.empty(layer0.image_id, layer0.height, layer0.width)
    rles, scores, boxes, paths = [], [], [], []
    for i, j in matches:
        s0, s1 = float(layer0.scores[j]), float(layer1.scores[i])
        rle = _merged_mask(layer0.rles[j], layer1.rles[i], s0, s1, config.mask_source)
        if rle is layer1.rles[i]:
            boxes.append(layer1.boxes[i])
        elif rle is layer0.rles[j]:
            boxes.append(layer0.boxes[j])
        else:
            boxes.append(rle_boxes([rle])[0].astype(np.float32))
        rles.append(rle)
        scores.append(_merged_score(s0, s1, config.score_source))
        parent, child = layer0.classes[j], layer1.classes[i]
        paths.append(roots[parent][:-1] + hierarchy.path_down(parent, child))
    if matches:
        out = Detections(
            layer0.image_id,
            layer0.height,
            layer0.width,
            [layer1.classes[i] for i, _ in matches],
            scores,
            np.asarray(boxes, np.float32),
            rles,
            paths,
        )
    return out


def pair_by_image(
    layer0: Iterable[Detections], layer1: Iterable[Detections]
) -> Iterator[tuple[Detections, Detections]]:
    """Pairs two per-image streams by image_id; an image found in one stream only is paired with an
    empty Detections of the same size.

    Streams in the same image order (as ``hierseg predict`` writes them) are joined holding one image
    at a time; out-of-order images are buffered until their partner arrives.
    """
    it0, it1 = iter(layer0), iter(layer1)
    pending0: dict[str, Detections] = {}
    pending1: dict[str, Detections] = {}
    seen: set[str] = set()

    def empty_like(d: Detections) -> Detections:
        return Detections(d.image_id, d.height, d.width)

    def check_new(d: Detections, which: str) -> None:
        if d.image_id in seen or d.image_id in (pending0 if which == "Layer0" else pending1):
            raise ValueError(f"image {d.image_id} appears twice in the {which} predictions")

    done0 = done1 = False
    while not (done0 and done1):
        d0 = next(it0, None) if not done0 else None
        d1 = next(it1, None) if not done1 else None
        done0, done1 = done0 or d0 is None, done1 or d1 is None
        if d0 is not None:
            check_new(d0, "Layer0")
            if d0.image_id in pending1:
                seen.add(d0.image_id)
                yield d0, pending1.pop(d0.image_id)
            elif d1 is not None and d1.image_id == d0.image_id:
                seen.add(d0.image_id)
                yield d0, d1
                d1 = None
            else:
                pending0[d0.image_id] = d0
        if d1 is not None:
            check_new(d1, "Layer1")
            if d1.image_id in pending0:
                seen.add(d1.image_id)
                yield pending0.pop(d1.image_id), d1
            else:
                pending1[d1.image_id] = d1
    for d0 in pending0.values():
        yield d0, empty_like(d0)
    for d1 in pending1.values():
        yield empty_like(d1), d1


def ensemble_stream(
    layer0: Iterable[Detections],
    layer1: Iterable[Detections],
    hierarchy: Hierarchy,
    config: EnsembleConfig | None = None,
) -> Iterator[Detections]:
    """:func:`ensemble_image` over two per-image streams, lazily."""
    for d0, d1 in pair_by_image(layer0, layer1):
        yield ensemble_image(d0, d1, hierarchy, config)


def ensemble_files(
    layer0_path: str,
    layer1_path: str,
    out_path: str,
    hierarchy: Hierarchy,
    config: EnsembleConfig | None = None,
    *,
    show_progress: bool = True,
) -> int:
    """Ensembles two prediction files (JSON lines, parquet or challenge CSV) into ``out_path``
    (``.jsonl`` or ``.parquet``, written atomically). Returns the number of images written."""
    from tqdm import tqdm

    from ensembles.prediction_io import read_predictions, write_predictions

    merged = ensemble_stream(read_predictions(layer0_path), read_predictions(layer1_path), hierarchy, config)
    count = 0

    def counted() -> Iterator[Detections]:
        nonlocal count
        for d in tqdm(merged, desc="ensemble", unit="img", disable=not show_progress):
            count += 1
            yield d

    write_predictions(out_path, counted())
    return count
