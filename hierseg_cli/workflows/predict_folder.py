"""Ensembled prediction over an image folder: both layers' exports -> submission, JSON lines, PNGs.

The loop (one pass over the images, in sorted path order)::

    decode (tf.data, parallel, EXIF applied) -> batch -> Layer0 serve_images -> paste + RLE
                                                      -> Layer1 serve_images -> paste + RLE
    -> ensembles.merge.ensemble_image per image -> a part file every ``chunk_size`` images

Both layers share each decoded image (and its preprocessed tensor when their input sizes agree).

**Resuming.** Finished images are kept in append-only *part files* ``OUT/parts/part-<hash>.jsonl``,
each written atomically (temporary file, then rename) once it holds ``chunk_size`` images, so a
killed run loses at most the images of the chunk in flight. Running again with the same ``--out``
reads the parts, predicts only the images not in any part, and then writes the final files from
the parts in path order; the final files therefore do not depend on how the work was split into runs.

**Outputs** (all written atomically, in ``out_dir``):

* ``submission.csv``: the challenge submission, a row for every readable image (an empty one when
  nothing was found); unreadable images have no size to write and are left out (see report.json);
* ``predictions.jsonl``: the ensembled instances with label paths (:class:`Detections` JSON lines);
* ``layer0.jsonl``, ``layer1.jsonl``: each layer's own predictions (``hierseg ensemble`` can re-merge
  them with another config without running the models again);
* ``report.json``: counts and the unreadable images with their error; ``timing.json``: the time split
  of the last run (not part of the deterministic outputs);
* ``visualize/<ImageID>.png`` with ``visualize=True``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ensembles.config import PredictConfig
from ensembles.merge import ensemble_image
from hierseg import atomic_write
from hierseg.detections import Detections
from hierseg.errors import UsageError
from hierseg.hierarchy import Hierarchy
from hierseg.serving import image_io
from hierseg.serving.predictor import LayerPredictor
from hierseg_cli.workflows.predict_parts import FINAL_JSONL, PartIndex, part_name, record_line
from hierseg_cli.workflows.predict_resume import PARTS_DIR, check_resume

VISUALIZE_DIR = "visualize"
TIMING_KEYS = ("decode", "layer0", "layer1", "ensembling", "encoding", "visualize")


@dataclass
class Timer:
    """Wall seconds spent per stage (a stage may be entered many times)."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMING_KEYS, 0.0))

    def add(self, key: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[key] = self.seconds.get(key, 0.0) + now - since
        return now


# ------------------------------------------------------------------------------------ the workflow
def _names(hierarchy: Hierarchy, predictors: Sequence[LayerPredictor]) -> dict[str, str]:
    names = {}
    for p in predictors:
        names.update(zip(p.label_map.mids, p.label_map.names))
    names.update({m: hierarchy.name(m) for m in hierarchy.classes})
    return names


class _Run:
    """One run's per-batch work: both layers, the merge, the part records, the pictures."""

    def __init__(self, out_dir: str, config: PredictConfig, hierarchy: Hierarchy, predictors, names, timer: Timer):
        self.out_dir, self.config, self.hierarchy = out_dir, config, hierarchy
        self.predictors, self.names, self.timer = predictors, names, timer
        self.buffer: list[str] = []  # part records not yet written

    def flush(self) -> None:
        """Writes the buffered records as one part file (atomically), named after its first image."""
        if self.buffer:
            t = time.perf_counter()
            first = json.loads(self.buffer[0].split("\t", 1)[0])["path"]
            atomic_write.write_text(
                os.path.join(self.out_dir, PARTS_DIR, part_name(first)), "\n".join(self.buffer) + "\n"
            )
            self.buffer.clear()
            self.timer.add("encoding", t)

    def add_unreadable(self, path: str, error: str) -> None:
        self.buffer.append(record_line(path, image_io.image_id_of(path), error=error))

    def process(self, batch: list[dict]) -> None:
        """Predicts a batch of decoded images with both layers, merges and buffers each image's record."""
        bids = [image_io.image_id_of(e["path"]) for e in batch]
        outs = []
        for key, pred in zip(("layer0", "layer1"), self.predictors):
            t = time.perf_counter()
            s = pred.output_size
            images = np.stack([e[f"image_{s}"] for e in batch])
            outs.append(pred.predict(images, np.stack([e[f"image_info_{s}"] for e in batch]), bids))
            self.timer.add(key, t)
        for e, image_id, d0, d1 in zip(batch, bids, *outs):
            t = time.perf_counter()
            merged = ensemble_image(d0, d1, self.hierarchy, self.config.ensemble)
            t = self.timer.add("ensembling", t)
            self.buffer.append(record_line(e["path"], image_id, layers=(d0, d1, merged)))  # LAYER_KEYS order
            t = self.timer.add("encoding", t)
            if self.config.visualize:
                png = os.path.join(self.out_dir, VISUALIZE_DIR, f"{image_id}.png")
                self._draw(e[image_io.ORIGINAL], merged, png, e["path"])
                self.timer.add("visualize", t)

    def _draw(self, image: np.ndarray, merged: Detections, png: str, image_path: str) -> None:
        """The merged detections drawn on the image, beside its ground truth when the folder has it."""
        from hierseg_cli.ground_truth_view import write_prediction_png

        names = self.names
        write_prediction_png(
            image,
            merged,
            lambda m: names.get(m, m),
            png,
            image_path=image_path,
            min_score=self.config.visualize_min_score,
        )


def _image_ids(paths: Sequence[str]) -> list[str]:
    """The ImageID of each path; two images with one ImageID would collide in every output file."""
    ids = [image_io.image_id_of(p) for p in paths]
    seen: dict[str, str] = {}
    for p, i in zip(paths, ids):
        if i in seen:
            raise ValueError(f"two images have the ImageID {i}: {seen[i]} and {p}")
        seen[i] = p
    return ids


def _layer_predictors(
    layer0_export: str,
    layer1_export: str,
    config: PredictConfig,
    hierarchy: Hierarchy,
    predictors: tuple[LayerPredictor, LayerPredictor] | None,
) -> tuple:
    """Both layers' predictors (loaded unless given), checked to predict masks and to be given in
    layer order, and wrapped for test-time augmentation when ``config.tta`` asks for it."""
    l0, l1 = predictors or (
        LayerPredictor(layer0_export, min_score=config.ensemble.min_layer0_score),
        LayerPredictor(layer1_export, min_score=config.ensemble.min_layer1_score),
    )
    for layer, predictor in (("layer0", l0), ("layer1", l1)):
        if not getattr(predictor, "has_masks", True):
            raise UsageError(
                f"--{layer} {predictor.export_dir}: a box-only model (no detection_masks, e.g. model.type "
                "retinanet) cannot make a segmentation-track submission; export a mask model (mask_rcnn, shapemask)"
            )
    hierarchy.check_layer_order([l0.mids, l1.mids], [f"--layer0 {l0.export_dir}", f"--layer1 {l1.export_dir}"])
    if config.tta.enabled:  # each layer runs its test-time views, merged (hierseg.serving.tta)
        from hierseg.serving.tta import TTAPredictor

        l0, l1 = TTAPredictor(l0, config.tta), TTAPredictor(l1, config.tta)
    return l0, l1


def _predict_pending(run: _Run, pending: list[str], config: PredictConfig, chunk_size: int, bar: tqdm) -> int:
    """Decodes, predicts and records every image of ``pending`` (part files every ``chunk_size``
    records); returns how many of them could not be read."""
    l0, l1 = run.predictors
    batch_size = config.batch_size
    ds = image_io.image_dataset(
        pending, {l0.output_size, l1.output_size}, apply_exif=config.apply_exif, keep_original=config.visualize
    ).prefetch(2 * batch_size)
    num_unreadable = 0
    batch: list[dict] = []
    t = time.perf_counter()
    for element in ds.as_numpy_iterator():
        run.timer.add("decode", t)
        element["path"] = element[image_io.PATH].decode("utf-8")
        if not element[image_io.OK]:
            num_unreadable += 1
            run.add_unreadable(element["path"], element[image_io.ERROR].decode("utf-8", "replace"))
            bar.update(1)
        else:
            batch.append(element)
        if len(batch) == batch_size:
            run.process(batch)
            bar.update(len(batch))
            batch = []
        if len(run.buffer) >= chunk_size:
            run.flush()
        t = time.perf_counter()
    if batch:
        run.process(batch)
        bar.update(len(batch))
    run.flush()
    return num_unreadable


def predict_folder(
    layer0_export: str,
    layer1_export: str,
    images: str | Sequence[str],
    out_dir: str,
    config: PredictConfig | None = None,
    *,
    hierarchy: Hierarchy | None = None,
    show_progress: bool = True,
    predictors: tuple[LayerPredictor, LayerPredictor] | None = None,
    overwrite: bool = False,
) -> dict:
    """Predicts, ensembles and writes every image of ``images`` (see the module docstring).

    Args:
      layer0_export, layer1_export: export directories of the two layers; each one's mask threshold
        and detection score floor are its own (``export_config.yaml``).
      images: a directory, a glob or a file (local or gs://), or a list of image paths.
      out_dir: output directory (local); re-running with the same one resumes.
      config: the ensembling, submission and run options (:class:`ensembles.config.PredictConfig`);
        its defaults when None.
      hierarchy: the class hierarchy; the shipped 300-class one when None.
      show_progress: a progress bar.
      predictors: already loaded predictors (bench and demo reuse them); else loaded from the exports,
        with ``config.ensemble.min_layer{0,1}_score`` as their score floors.
      overwrite: start afresh when ``out_dir`` was written from other exports, images or config (else
        such a rerun is an error; see :mod:`hierseg_cli.workflows.predict_resume`).

    Returns:
      A dict: ``num_images``, ``num_resumed`` (done by an earlier run), ``num_predicted``,
      ``num_unreadable``, ``unreadable`` (list of {path, error}), ``files`` (name -> path),
      ``timing`` (stage -> seconds, this run), ``images_per_second`` (this run, predicted images).
    """
    config = config or PredictConfig()
    hierarchy = hierarchy or Hierarchy.builtin()
    paths = sorted(images) if not isinstance(images, str) else image_io.list_images(images)
    ids = _image_ids(paths)
    check_resume(out_dir, (layer0_export, layer1_export), images, config, hierarchy, overwrite=overwrite)
    chunk_size = config.chunk_size or max(config.batch_size, 32)
    os.makedirs(os.path.join(out_dir, PARTS_DIR), exist_ok=True)
    if config.visualize:
        os.makedirs(os.path.join(out_dir, VISUALIZE_DIR), exist_ok=True)

    index = PartIndex(os.path.join(out_dir, PARTS_DIR))
    pending = [p for p, i in zip(paths, ids) if i not in index]
    timer = Timer()
    l0, l1 = _layer_predictors(layer0_export, layer1_export, config, hierarchy, predictors)
    names = _names(hierarchy, (l0, l1))
    start = time.perf_counter()

    run = _Run(out_dir, config, hierarchy, (l0, l1), names, timer)
    num_unreadable_now = 0
    with tqdm(
        total=len(paths),
        initial=len(paths) - len(pending),
        unit="img",
        desc="predict",
        disable=not show_progress,
        smoothing=0.1,
    ) as bar:
        if pending:
            num_unreadable_now = _predict_pending(run, pending, config, chunk_size, bar)
    elapsed = time.perf_counter() - start

    result = finalize(out_dir, paths, config, hierarchy=hierarchy, names=names, timer=timer)
    result.update(
        {
            "num_resumed": len(paths) - len(pending),
            "num_predicted": len(pending) - num_unreadable_now,
            "images_per_second": (len(pending) - num_unreadable_now) / elapsed if pending else 0.0,
            "timing": {k: round(v, 3) for k, v in timer.seconds.items()},
            "elapsed_seconds": round(elapsed, 3),
        }
    )
    _write_timing(out_dir, result)
    return result


def _write_timing(out_dir: str, result: dict) -> None:
    """``timing.json``: this run's time split and throughput, kept apart from the deterministic outputs."""
    atomic_write.write_text(
        os.path.join(out_dir, "timing.json"),
        json.dumps(
            {k: result[k] for k in ("timing", "elapsed_seconds", "images_per_second", "num_resumed", "num_predicted")},
            indent=1,
        )
        + "\n",
    )


def finalize(
    out_dir: str,
    paths: Sequence[str],
    config: PredictConfig,
    *,
    hierarchy: Hierarchy,
    names: dict | None = None,
    timer: Timer | None = None,
) -> dict:
    """Writes the final files of ``out_dir`` from its part files, in the order of ``paths``.

    The JSON lines files are copied from the part records as they are; each merged record is decoded
    once, for the submission (and again only to draw a picture an earlier run did not draw).
    """
    from ensembles.submission import write_submission

    timer = timer or Timer()
    t = time.perf_counter()
    index = PartIndex(os.path.join(out_dir, PARTS_DIR))
    missing = [p for p in paths if image_io.image_id_of(p) not in index]
    if missing:
        raise RuntimeError(f"{out_dir}: {len(missing)} images have no result yet (first: {missing[0]})")
    ids = [image_io.image_id_of(p) for p in paths]
    ok_ids = [i for i in ids if i not in index.errors]
    files = {}
    with contextlib.ExitStack() as stack:
        jsonl, num_instances = {}, [0]
        for key, name in FINAL_JSONL.items():
            files[name] = os.path.join(out_dir, name)
            jsonl[key] = stack.enter_context(atomic_write.atomic_open(files[name]))

        def merged_detections() -> Iterator[Detections]:
            for i in ok_ids:
                lines = index.json_lines(i)
                for key, f in jsonl.items():
                    f.write(lines[key] + "\n")
                merged = Detections.from_json(lines["merged"])
                num_instances[0] += len(merged)
                yield merged

        files["submission.csv"] = os.path.join(out_dir, "submission.csv")
        write_submission(merged_detections(), files["submission.csv"], hierarchy, config=config.submission)
    unreadable = [{"path": p, "image_id": i, "error": index.errors[i]} for p, i in zip(paths, ids) if i in index.errors]
    report = {
        "num_images": len(paths),
        "num_ok": len(ok_ids),
        "num_unreadable": len(unreadable),
        "num_instances": num_instances[0],
        "unreadable": unreadable,
    }
    files["report.json"] = os.path.join(out_dir, "report.json")
    atomic_write.write_json(files["report.json"], report, indent=1)
    timer.add("encoding", t)
    if config.visualize:
        t = time.perf_counter()
        files["visualize"] = _draw_missing_pictures(out_dir, index, ok_ids, dict(zip(ids, paths)), config, names)
        timer.add("visualize", t)
    index.close()
    return {**{k: v for k, v in report.items() if k != "unreadable"}, "unreadable": unreadable, "files": files}


def _draw_missing_pictures(
    out_dir: str, index: PartIndex, ok_ids: list[str], path_of: dict[str, str], config: PredictConfig, names
) -> str:
    """Draws ``visualize/<ImageID>.png`` for each readable image that has none yet (predicted by an
    earlier run without ``visualize``); returns the folder."""
    from hierseg_cli.ground_truth_view import write_prediction_png

    for i in ok_ids:
        png = os.path.join(out_dir, VISUALIZE_DIR, f"{i}.png")
        if not os.path.exists(png):  # done by an earlier run without --visualize
            image, err = image_io.read_image(path_of[i], config.apply_exif)
            if not err:
                name = lambda m: (names or {}).get(m, m)  # noqa: E731
                det = index.detections(i, "merged")
                write_prediction_png(image, det, name, png, image_path=path_of[i], min_score=config.visualize_min_score)
    return os.path.join(out_dir, VISUALIZE_DIR)
