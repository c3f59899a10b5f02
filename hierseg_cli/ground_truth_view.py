"""Ground truth to draw beside predictions (``predict --visualize``, the demo grid) and in
``hierseg browse``: an Open Images folder's annotations as :class:`hierseg.serving.render.Instance`
lists, per image."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from hierseg.layout import PreparedLayer
from hierseg.serving.render import Instance


def label_path_text(hierarchy, mid: str) -> str:
    """``"Person › Man"``: the shortest path from a root of the hierarchy down to ``mid``, by names."""
    from hierseg.serving.visualize import PATH_SEPARATOR

    if mid not in hierarchy:
        return mid
    roots = [r for r in hierarchy.roots() if r == mid or r in hierarchy.ancestors(mid)]
    path = min((hierarchy.path_down(r, mid) for r in roots), key=len, default=(mid,))
    return PATH_SEPARATOR.join(hierarchy.name(m) for m in path)


def instances_of(gt, name: Callable[[str], str]) -> list[Instance]:
    """One image's :class:`ensembles.metric.groundtruth.ImageGroundTruth` (as annotated, not expanded)
    -> instances: masks, group-of regions (hatched) and boxes without a mask (dashed), masks first;
    ``name`` captions a class (a name or a label path)."""
    from hierseg.rle import decode_rle

    masks = [None if r is None else decode_rle(r) > 0 for r in gt.rles]
    return styled_instances(gt.classes, gt.boxes, masks, gt.is_group_of, name)


def styled_instances(classes, boxes, masks, is_group_of, name: Callable[[str], str]) -> list[Instance]:
    """Instances from annotation arrays (``masks[k]`` None for a box without a mask), masks first, then
    group-of regions, then boxes."""
    out = []
    for c, box, mask, group in zip(classes, boxes, masks, is_group_of):
        style = "box_only" if mask is None else ("group_of" if group else "mask")
        text = name(c) + (" (group)" if group else "") + (" (box)" if mask is None else "")
        out.append(Instance(c, tuple(float(v) for v in box), text, mask, style))
    order = np.argsort([("mask", "group_of", "box_only").index(i.style) for i in out], kind="stable")
    return [out[i] for i in order]


def oid_split_of(images_dir: str) -> tuple[str, str] | None:
    """``(oid_dir, split)`` when ``images_dir`` is the image folder of an annotated split of an Open
    Images folder (``OID/validation`` with ``OID/challenge-2019-validation-segmentation-masks.csv``)."""
    from hierseg.oid.layout import OidPaths

    oid_dir, split = os.path.split(os.path.normpath(images_dir))
    try:
        paths = OidPaths.from_dir(oid_dir)
        return (oid_dir, split) if os.path.exists(paths.masks_csv(split)) else None
    except (ValueError, KeyError, FileNotFoundError):
        return None


def load_ground_truth_instances(oid_dir: str, split: str, hierarchy) -> dict[str, list[Instance]]:
    """{ImageID: instances} of every annotated image of the split."""
    from ensembles.metric.groundtruth_files import load_ground_truth

    gts, _ = load_ground_truth(oid_dir, split, hierarchy)
    return {i: instances_of(g, hierarchy.name) for i, g in gts.items()}


@lru_cache(maxsize=4)
def _ground_truth_of_dir(images_dir: str) -> dict:
    """{ImageID: ImageGroundTruth} of the annotated split ``images_dir`` is, else {} (loaded once)."""
    found = oid_split_of(images_dir)
    if found is None:
        return {}
    from ensembles.metric.groundtruth_files import load_ground_truth
    from hierseg.oid.layout import OidPaths

    oid_dir, split = found
    return load_ground_truth(oid_dir, split, OidPaths.from_dir(oid_dir).load_hierarchy())[0]


def write_prediction_png(
    image: np.ndarray, detections, name: Callable[[str], str], png: str, *, image_path: str, min_score: float
) -> None:
    """``predict --visualize``'s picture of one image: its ground truth beside the prediction when the
    image lies in an annotated split folder of an Open Images dataset (``OID/validation/``), and the
    colour legend (:func:`hierseg.serving.render.render_prediction`)."""
    from hierseg.serving.render import render_prediction
    from hierseg.serving.visualize import save_png

    gt = _ground_truth_of_dir(os.path.dirname(os.path.abspath(image_path))).get(detections.image_id)
    truth = instances_of(gt, name) if gt is not None else None
    save_png(render_prediction(image, detections, name, ground_truth=truth, min_score=min_score), png)


def oid_examples(oid_dir: str, split: str, hierarchy, wanted: set[str] | None, limit: int):
    """``(ImageID, image uint8 [H, W, 3], instances)`` of up to ``limit`` annotated images of the split
    (those with an instance of a ``wanted`` class when given), in ImageID order."""
    from ensembles.metric.groundtruth_files import load_ground_truth
    from hierseg.oid.layout import OidPaths
    from hierseg.serving import image_io

    paths = OidPaths.from_dir(oid_dir)
    gts, _ = load_ground_truth(oid_dir, split, hierarchy)
    caption = lambda m: label_path_text(hierarchy, m)  # noqa: E731
    count = 0
    for image_id in sorted(gts):
        gt = gts[image_id]
        if wanted and not wanted & set(gt.classes):
            continue
        image, err = image_io.read_image(paths.image_path(split, image_id), apply_exif=False)
        if err:
            raise ValueError(f"{paths.image_path(split, image_id)}: {err}")
        yield image_id, image, instances_of(gt, caption)
        count += 1
        if count >= limit:
            return


def prepared_examples(layer_dir: str, split: str, hierarchy, wanted: set[str] | None, limit: int):
    """The same from a prepared layer folder: its ``<split>-*.tfrecord`` decoded by the engine's own
    decoder (:func:`hierseg.input.example_decoder.decode_example`), so the picture is what the model
    trains on (the gray fill of non-target parents included); classes by ``label_map.pbtxt``."""
    import tensorflow as tf

    from hierseg.input import example_decoder as D
    from hierseg.label_map import LabelMap

    layer = PreparedLayer(layer_dir)
    label_map = LabelMap.load(layer.label_map)
    files = sorted(tf.io.gfile.glob(layer.shard_pattern(split)))
    if not files:
        raise FileNotFoundError(f"{layer_dir}: no {split}-*.tfrecord files")
    caption = lambda m: label_path_text(hierarchy, m)  # noqa: E731
    count = 0
    for raw in tf.data.TFRecordDataset(files):
        ex = D.decode_example(raw)
        mids = [label_map.mid_of(int(c)) for c in ex[D.CLASSES].numpy()]
        if wanted and not wanted & set(mids):
            continue
        masks = [m > 0 for m in ex[D.MASKS].numpy()]
        instances = styled_instances(mids, ex[D.BOXES].numpy(), masks, ex[D.IS_CROWD].numpy(), caption)
        yield ex[D.SOURCE_ID].numpy().decode(), ex[D.IMAGE].numpy(), instances
        count += 1
        if count >= limit:
            return


def draw_prediction_file(
    predictions_jsonl: str, images_dir: str, out_dir: str, name: Callable[[str], str], *, min_score: float, limit: int
) -> list[str]:
    """Pictures (ground truth beside, when ``images_dir`` is an annotated split) of the first ``limit``
    images of a ``predictions.jsonl`` written by ``predict``, as ``out_dir/<ImageID>.png``; their paths."""
    from itertools import islice

    from hierseg.detections import read_jsonl
    from hierseg.serving import image_io

    path_of = {image_io.image_id_of(p): p for p in image_io.list_images(images_dir)}
    os.makedirs(out_dir, exist_ok=True)
    pngs = []
    for det in islice(read_jsonl(predictions_jsonl), limit):
        image, err = image_io.read_image(path_of[det.image_id], apply_exif=False)
        if err:
            raise ValueError(f"{path_of[det.image_id]}: {err}")
        pngs.append(os.path.join(out_dir, f"{det.image_id}.png"))
        write_prediction_png(image, det, name, pngs[-1], image_path=path_of[det.image_id], min_score=min_score)
    return pngs
