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

import hashlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from hierseg import atomic_write
from hierseg.detections import Detections, write_jsonl
from hierseg.hierarchy import Hierarchy
from hierseg.serving import image_io
from hierseg.serving.predictor import LayerPredictor

PARTS_DIR = "parts"
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


# ------------------------------------------------------------------------------------- part files
def _part_name(first_path: str) -> str:
    # Named after the first image it holds: that image was pending, so no existing part holds it,
    # so the name is new, whatever subset of images this run works on.
    return f"part-{hashlib.sha1(first_path.encode('utf-8')).hexdigest()[:16]}.jsonl"


def _record_line(
    path: str, image_id: str, error: str | None = None, layers: tuple[Detections, Detections, Detections] | None = None
) -> str:
    rec: dict = {"image_id": image_id, "path": path}
    if error is not None:
        rec["error"] = error
    else:
        for key, det in zip(("layer0", "layer1", "merged"), layers):
            rec[key] = json.loads(det.to_json())
    return json.dumps(rec)


class PartIndex:
    """Where each finished image's record lies: ``image_id -> (part file, byte offset)``.

    Records are read back one at a time by seeking, so assembling the final files of a 100k-image
    run never holds more than one image's masks.
    """

    def __init__(self, parts_dir: str) -> None:
        self.parts_dir = parts_dir
        self.where: dict[str, tuple[str, int]] = {}
        self.errors: dict[str, str] = {}
        self._handles: dict[str, object] = {}
        if not os.path.isdir(parts_dir):
            return
        for name in sorted(os.listdir(parts_dir)):
            if not (name.startswith("part-") and name.endswith(".jsonl")):
                continue  # temporaries of a killed run
            path = os.path.join(parts_dir, name)
            with open(path, "rb") as f:
                offset = 0
                for lineno, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            rec = json.loads(line)
                            image_id = rec["image_id"]
                        except (ValueError, KeyError) as e:
                            raise ValueError(
                                f"{path}:{lineno}: bad part record ({e}); delete the file to redo its images"
                            ) from None
                        self.where[image_id] = (path, offset)
                        if "error" in rec:
                            self.errors[image_id] = rec["error"]
                    offset += len(line)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self.where

    def record(self, image_id: str) -> dict:
        path, offset = self.where[image_id]
        f = self._handles.get(path)
        if f is None:
            if len(self._handles) >= 64:
                self.close()
            f = self._handles[path] = open(path, "rb")  # noqa: SIM115 - cached, closed in close()
        f.seek(offset)
        return json.loads(f.readline())

    def detections(self, image_id: str, key: str) -> Detections | None:
        rec = self.record(image_id)
        return None if "error" in rec else Detections.from_json(json.dumps(rec[key]))

    def close(self) -> None:
        for f in self._handles.values():
            f.close()
        self._handles.clear()


# ------------------------------------------------------------------------------------ the workflow
def _names(hierarchy: Hierarchy, predictors: Sequence[LayerPredictor]) -> dict[str, str]:
    names = {}
    for p in predictors:
        names.update(zip(p.label_map.mids, p.label_map.names))
    names.update({m: hierarchy.name(m) for m in hierarchy.classes})
    return names


def _ensemble(layer0: Detections, layer1: Detections, hierarchy: Hierarchy, config) -> Detections:
    from ensembles.merge import ensemble_image

    return ensemble_image(layer0, layer1, hierarchy, config)


def _write_submission(
    path: str,
    detections: Iterator[Detections],
    *,
    score_threshold: float,
    max_per_image: int | None,
    hierarchy: Hierarchy,
) -> None:
    from ensembles.config import SubmissionConfig
    from ensembles.submission import write_submission

    config = SubmissionConfig(score_threshold=float(score_threshold), max_per_image=int(max_per_image or 0))
    write_submission(detections, path, hierarchy, config=config)


def predict_folder(
    layer0_export: str,
    layer1_export: str,
    images: str | Sequence[str],
    out_dir: str,
    *,
    batch_size: int = 4,
    ensemble_config=None,
    hierarchy: Hierarchy | None = None,
    visualize: bool = False,
    show_progress: bool = True,
    score_threshold: float = 0.0,
    max_per_image: int | None = None,
    layer_min_score: float = 0.05,
    chunk_size: int | None = None,
    apply_exif: bool = True,
    predictors: tuple[LayerPredictor, LayerPredictor] | None = None,
    visualize_min_score: float = 0.3,
    tta=None,
) -> dict:
    """Predicts, ensembles and writes every image of ``images`` (see the module docstring).

    Args:
      layer0_export, layer1_export: export directories of the two layers.
      images: a directory, a glob or a file (local or gs://), or a list of image paths.
      out_dir: output directory (local); re-running with the same one resumes.
      batch_size: images per ``serve_images`` call.
      ensemble_config: an ``ensembles.config.EnsembleConfig``; its defaults when None.
      hierarchy: the class hierarchy; the shipped 300-class one when None.
      visualize: also write ``visualize/<ImageID>.png``.
      score_threshold, max_per_image: applied to the submission only.
      layer_min_score: each layer's detections below this are dropped before mask pasting.
      chunk_size: images per part file (default ``max(batch_size, 32)``).
      apply_exif: rotate images by their EXIF orientation (see :mod:`hierseg.serving.image_io`).
      predictors: already loaded predictors (bench and demo reuse them); else loaded from the exports.
      visualize_min_score: instances scoring below this are not drawn (they are still in the outputs).
      tta: a :class:`hierseg.serving.tta.TTAConfig`; when enabled, each layer runs its views, merged.

    Returns:
      A dict: ``num_images``, ``num_resumed`` (done by an earlier run), ``num_predicted``,
      ``num_unreadable``, ``unreadable`` (list of {path, error}), ``files`` (name -> path),
      ``timing`` (stage -> seconds, this run), ``images_per_second`` (this run, predicted images).
    """
    from ensembles.config import EnsembleConfig

    hierarchy = hierarchy or Hierarchy.builtin()
    ensemble_config = ensemble_config or EnsembleConfig()
    paths = sorted(images) if not isinstance(images, str) else image_io.list_images(images)
    ids = [image_io.image_id_of(p) for p in paths]
    seen: dict[str, str] = {}
    for p, i in zip(paths, ids):
        if i in seen:
            raise ValueError(f"two images have the ImageID {i}: {seen[i]} and {p}")
        seen[i] = p
    chunk_size = chunk_size or max(batch_size, 32)
    os.makedirs(os.path.join(out_dir, PARTS_DIR), exist_ok=True)
    vis_dir = os.path.join(out_dir, VISUALIZE_DIR)
    if visualize:
        os.makedirs(vis_dir, exist_ok=True)

    index = PartIndex(os.path.join(out_dir, PARTS_DIR))
    pending = [p for p, i in zip(paths, ids) if i not in index]
    timer = Timer()
    l0, l1 = predictors or (
        LayerPredictor(layer0_export, min_score=layer_min_score),
        LayerPredictor(layer1_export, min_score=layer_min_score),
    )
    if tta is not None and tta.enabled:
        from hierseg.serving.tta import TTAPredictor

        l0, l1 = TTAPredictor(l0, tta), TTAPredictor(l1, tta)
    names = _names(hierarchy, (l0, l1))
    start = time.perf_counter()

    buffer: list[str] = []

    def flush() -> None:
        if buffer:
            t = time.perf_counter()
            first = json.loads(buffer[0])["path"]
            atomic_write.write_text(os.path.join(out_dir, PARTS_DIR, _part_name(first)), "\n".join(buffer) + "\n")
            buffer.clear()
            timer.add("encoding", t)

    def process(batch: list[dict]) -> None:
        bids = [image_io.image_id_of(e["path"]) for e in batch]
        outs = []
        for key, pred in (("layer0", l0), ("layer1", l1)):
            t = time.perf_counter()
            s = pred.output_size
            outs.append(
                pred.predict(
                    np.stack([e[f"image_{s}"] for e in batch]), np.stack([e[f"image_info_{s}"] for e in batch]), bids
                )
            )
            timer.add(key, t)
        for e, image_id, d0, d1 in zip(batch, bids, *outs):
            t = time.perf_counter()
            merged = _ensemble(d0, d1, hierarchy, ensemble_config)
            t = timer.add("ensembling", t)
            buffer.append(_record_line(e["path"], image_id, layers=(d0, d1, merged)))
            t = timer.add("encoding", t)
            if visualize:
                from hierseg_cli.ground_truth_view import write_prediction_png

                png = os.path.join(vis_dir, f"{image_id}.png")
                name = lambda m: names.get(m, m)  # noqa: E731
                write_prediction_png(
                    e[image_io.ORIGINAL], merged, name, png, image_path=e["path"], min_score=visualize_min_score
                )
                timer.add("visualize", t)

    num_unreadable_now = 0
    bar = tqdm(
        total=len(paths),
        initial=len(paths) - len(pending),
        unit="img",
        desc="predict",
        disable=not show_progress,
        smoothing=0.1,
    )
    if pending:
        ds = image_io.image_dataset(
            pending, {l0.output_size, l1.output_size}, apply_exif=apply_exif, keep_original=visualize
        ).prefetch(2 * batch_size)
        it = iter(ds.as_numpy_iterator())
        batch: list[dict] = []
        t = time.perf_counter()
        for element in it:
            timer.add("decode", t)
            element["path"] = element[image_io.PATH].decode("utf-8")
            if not element[image_io.OK]:
                num_unreadable_now += 1
                buffer.append(
                    _record_line(
                        element["path"],
                        image_io.image_id_of(element["path"]),
                        error=element[image_io.ERROR].decode("utf-8", "replace"),
                    )
                )
                bar.update(1)
            else:
                batch.append(element)
            if len(batch) == batch_size:
                process(batch)
                bar.update(len(batch))
                batch = []
            if len(buffer) >= chunk_size:
                flush()
            t = time.perf_counter()
        if batch:
            process(batch)
            bar.update(len(batch))
        flush()
    bar.close()
    elapsed = time.perf_counter() - start

    result = finalize(
        out_dir,
        paths,
        hierarchy=hierarchy,
        score_threshold=score_threshold,
        max_per_image=max_per_image,
        visualize=visualize,
        visualize_min_score=visualize_min_score,
        names=names,
        apply_exif=apply_exif,
        timer=timer,
    )
    result.update(
        {
            "num_resumed": len(paths) - len(pending),
            "num_predicted": len(pending) - num_unreadable_now,
            "images_per_second": (len(pending) - num_unreadable_now) / elapsed if pending else 0.0,
            "timing": {k: round(v, 3) for k, v in timer.seconds.items()},
            "elapsed_seconds": round(elapsed, 3),
        }
    )
    atomic_write.write_text(
        os.path.join(out_dir, "timing.json"),
        json.dumps(
            {k: result[k] for k in ("timing", "elapsed_seconds", "images_per_second", "num_resumed", "num_predicted")},
            indent=1,
        )
        + "\n",
    )
    return result


def finalize(
    out_dir: str,
    paths: Sequence[str],
    *,
    hierarchy: Hierarchy,
    score_threshold: float = 0.0,
    max_per_image: int | None = None,
    visualize: bool = False,
    visualize_min_score: float = 0.3,
    names: dict | None = None,
    apply_exif: bool = True,
    timer: Timer | None = None,
) -> dict:
    """Writes the final files of ``out_dir`` from its part files, in the order of ``paths``."""
    timer = timer or Timer()
    t = time.perf_counter()
    index = PartIndex(os.path.join(out_dir, PARTS_DIR))
    missing = [p for p in paths if image_io.image_id_of(p) not in index]
    if missing:
        raise RuntimeError(f"{out_dir}: {len(missing)} images have no result yet (first: {missing[0]})")
    ids = [image_io.image_id_of(p) for p in paths]
    ok_ids = [i for i in ids if i not in index.errors]
    files = {}
    for key, name in (("merged", "predictions.jsonl"), ("layer0", "layer0.jsonl"), ("layer1", "layer1.jsonl")):
        files[name] = os.path.join(out_dir, name)
        write_jsonl(files[name], (index.detections(i, key) for i in ok_ids))
    files["submission.csv"] = os.path.join(out_dir, "submission.csv")
    _write_submission(
        files["submission.csv"],
        (index.detections(i, "merged") for i in ok_ids),
        score_threshold=score_threshold,
        max_per_image=max_per_image,
        hierarchy=hierarchy,
    )
    unreadable = [{"path": p, "image_id": i, "error": index.errors[i]} for p, i in zip(paths, ids) if i in index.errors]
    report = {
        "num_images": len(paths),
        "num_ok": len(ok_ids),
        "num_unreadable": len(unreadable),
        "num_instances": 0,
        "unreadable": unreadable,
    }
    report["num_instances"] = sum(len(index.detections(i, "merged")) for i in ok_ids)
    files["report.json"] = os.path.join(out_dir, "report.json")
    atomic_write.write_text(files["report.json"], json.dumps(report, indent=1) + "\n")
    timer.add("encoding", t)
    if visualize:
        from hierseg_cli.ground_truth_view import write_prediction_png

        t = time.perf_counter()
        path_of = dict(zip(ids, paths))
        for i in ok_ids:
            png = os.path.join(out_dir, VISUALIZE_DIR, f"{i}.png")
            if not os.path.exists(png):  # done by an earlier run without --visualize
                image, err = image_io.read_image(path_of[i], apply_exif)
                if not err:
                    name = lambda m: (names or {}).get(m, m)  # noqa: E731
                    det = index.detections(i, "merged")
                    write_prediction_png(image, det, name, png, image_path=path_of[i], min_score=visualize_min_score)
        files["visualize"] = os.path.join(out_dir, VISUALIZE_DIR)
        timer.add("visualize", t)
    index.close()
    return {**{k: v for k, v in report.items() if k != "unreadable"}, "unreadable": unreadable, "files": files}
