"""`hierseg demo`: the whole pipeline end to end on the built-in synthetic dataset, on a CPU.

Stages (each one's result is kept in ``OUT/stages/<stage>.json``; running again with the same ``--out``
skips the stages already done, so an interrupted demo picks up where it stopped)::

    synth      hierseg.synth.generate_dataset           -> OUT/data (challenge 2019 folder layout)
    prepare    data_prep.prepare.prepare                -> OUT/prepared/layer{0,1}
    train0/1   hierseg.training.loop.train (tiny_cpu)   -> OUT/models/layer{0,1}
    eval0/1    COCO mask mAP of each layer on its prepared validation split
    export0/1  hierseg.serving.export.export_saved_model -> OUT/exports/layer{0,1}
    predict    predict_folder over the test images (with PNGs) and over the validation images
    oid_eval   the challenge metric on the validation images: the ensemble, and Layer0 alone
    *_tta      the validation images again with test-time augmentation (flip) and their challenge mAP
    submit     OUT/submission.csv (test images), validated; OUT/predictions_grid.png (six validation images,
               each beside its ground truth)

The summary (each stage's time, each mAP, where the files are) is printed and written to
``OUT/summary.json``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass

from hierseg import atomic_write
from hierseg.config.params import load, merge
from hierseg.layout import ModelDir, PreparedLayer
from hierseg.oid.layout import OidPaths
from hierseg_cli.workflows.stage_runner import Stages

DEMO_TTA = "flip"  # test-time augmentation the demo compares against plain prediction
DEFAULT_CONFIG = "tiny_cpu.yaml"


def find_config(name: str = DEFAULT_CONFIG) -> str:
    """A shipped experiment config by name (:func:`hierseg.config.shipped.find_config`)."""
    from hierseg.config.shipped import find_config as find_shipped

    return find_shipped(name)


def _experiment(config_file: str, layer_dir: str, steps: int, overrides: list[str] | None):
    from hierseg.config.experiment import ExperimentConfig, resolve_num_classes

    layer = PreparedLayer(layer_dir)
    cfg = load(ExperimentConfig, config_file, overrides)
    # The schedule of the file is for its own total_steps: stretch it to ``steps``.
    ratio = steps / max(1, cfg.train.total_steps)
    lr = cfg.train.learning_rate
    cfg = merge(
        cfg,
        {
            "train": {
                "learning_rate": {
                    "warmup_steps": int(round(lr.warmup_steps * ratio)),
                    "decay_steps": [max(1, int(round(d * ratio))) for d in lr.decay_steps],
                }
            }
        },
    )
    cfg = merge(
        cfg,
        {
            "data": {
                "train_file_pattern": layer.shard_pattern("train"),
                "eval_file_pattern": layer.shard_pattern("validation"),
                "eval_json": layer.validation_coco_json,
                "label_map": layer.label_map,
            },
            "train": {"total_steps": steps},
        },
    )
    return resolve_num_classes(cfg)


def _parents_only_submission(predict_dir: str, path: str, hierarchy, config) -> None:
    """A submission from Layer0's predictions alone (Layer1 left out), ensembled the same way."""
    from ensembles.merge import ensemble_image
    from ensembles.submission import write_submission
    from hierseg.detections import Detections, read_jsonl
    from hierseg_cli.workflows.predict_folder import FINAL_JSONL

    merged = (
        ensemble_image(d, Detections(d.image_id, d.height, d.width), hierarchy, config.ensemble)
        for d in read_jsonl(os.path.join(predict_dir, FINAL_JSONL["layer0"]))
    )
    write_submission(merged, path, hierarchy, config=config.submission)


def _oid_eval(data_dir: str, submission: str, output: str, hierarchy) -> dict:
    from ensembles.metric.evaluator import evaluate_submission, write_metrics

    metrics = evaluate_submission(data_dir, "validation", submission, hierarchy=hierarchy, num_workers=2)
    write_metrics(metrics, output)
    return {"mAP": float(metrics["mAP"]), "num_classes": len(metrics.get("per_class", {})), "metrics_file": output}


@dataclass(frozen=True)
class _DemoRun:
    """The options every stage reads, and the folders under ``out_dir`` they write."""

    out_dir: str  # absolute
    num_images: int
    steps: int
    seed: int
    config_file: str
    params_override: list[str] | None
    show_progress: bool

    @property
    def data_dir(self) -> str:
        return os.path.join(self.out_dir, "data")

    @property
    def prepared(self) -> str:
        return os.path.join(self.out_dir, "prepared")

    def predict_dir(self, name: str) -> str:
        return os.path.join(self.out_dir, f"predict_{name}")


def _synth_stage(run: _DemoRun) -> dict:
    from hierseg.synth import generate_dataset

    s = generate_dataset(run.data_dir, num_images=run.num_images, seed=run.seed, show_progress=run.show_progress)
    return {"splits": {k: v.get("images") for k, v in s["splits"].items()}, "classes": len(s["classes"])}


def _prepare_stage(run: _DemoRun) -> dict:
    from data_prep.config import PrepareConfig
    from data_prep.prepare import prepare as run_prepare

    res = run_prepare(run.data_dir, run.prepared, PrepareConfig(), num_workers=2, show_progress=run.show_progress)
    return {"out_dir": run.prepared, "summary": res if isinstance(res, dict) else str(res)}


def _train_stage(run: _DemoRun, cfg, model_dir: str) -> dict:
    from hierseg.training.loop import train as run_train
    from hierseg.training.strategy import make_strategy

    res = run_train(cfg, model_dir, make_strategy("cpu"), show_progress=run.show_progress)
    return {
        "step": res["step"],
        "loss": res["metrics"].get("loss"),
        "images_per_second": res["images_per_second"],
        "model_dir": model_dir,
    }


def _eval_stage(run: _DemoRun, cfg, model_dir: str) -> dict:
    from hierseg.evaluation.evaluator import evaluate as run_eval

    m = run_eval(
        cfg, model_dir, output_json=ModelDir(model_dir).eval_metrics_json(run.steps), show_progress=run.show_progress
    )
    return {
        "mask/AP": m["mask/AP"],
        "box/AP": m["box/AP"],
        "mask/AP50": m.get("mask/AP50"),
        "num_images": m.get("num_images"),
    }


def _export_stage(cfg, model_dir: str, export_dir: str) -> dict:
    from hierseg.serving.export import export_saved_model

    export_saved_model(cfg, model_dir, export_dir)
    return {"export_dir": export_dir}


def _train_layers(run: _DemoRun, stages: Stages) -> tuple[list[str], dict[str, dict]]:
    """Trains, evaluates and exports each layer; returns the export folders and the COCO metrics per layer."""
    exports, coco = [], {}
    for layer in (0, 1):
        layer_dir = PreparedLayer.of(run.prepared, layer).root
        model_dir = os.path.join(run.out_dir, "models", f"layer{layer}")
        export_dir = os.path.join(run.out_dir, "exports", f"layer{layer}")
        cfg = _experiment(run.config_file, layer_dir, run.steps, run.params_override)
        stages.run(f"train{layer}", functools.partial(_train_stage, run, cfg, model_dir))
        coco[f"layer{layer}"] = stages.run(f"eval{layer}", functools.partial(_eval_stage, run, cfg, model_dir))
        stages.run(f"export{layer}", functools.partial(_export_stage, cfg, model_dir, export_dir))
        exports.append(export_dir)
    return exports, coco


class _Predict:
    """The predict stages: ``predict_folder`` over a split with both exports. The predictors are loaded
    on the first stage that runs (a rerun whose predict stages are all done never loads them) and then
    shared by the others."""

    def __init__(self, run: _DemoRun, exports: list[str], hierarchy, config) -> None:
        self.run, self.exports, self.hierarchy, self.config = run, exports, hierarchy, config
        self._predictors = None

    def predictors(self) -> tuple:
        if self._predictors is None:
            from hierseg.serving.predictor import LayerPredictor

            self._predictors = (LayerPredictor(self.exports[0]), LayerPredictor(self.exports[1]))
        return self._predictors

    def stage(self, split: str, visualize: bool, tta=None, name: str | None = None) -> Callable[[], dict]:
        """The stage function predicting ``split`` into ``OUT/predict_{name or split}``."""

        def fn() -> dict:
            from hierseg_cli.workflows.predict_folder import predict_folder

            res = predict_folder(
                *self.exports,
                os.path.join(self.run.data_dir, split),
                self.run.predict_dir(name or split),
                dataclasses.replace(self.config, visualize=visualize, tta=tta or self.config.tta),
                hierarchy=self.hierarchy,
                show_progress=self.run.show_progress,
                predictors=self.predictors(),
            )
            keys = ("num_images", "num_ok", "num_unreadable", "num_instances", "images_per_second", "timing", "files")
            return {k: res[k] for k in keys}

        return fn


def _oid_eval_stage(run: _DemoRun, hierarchy, predict_cfg) -> dict:
    """The challenge mAP on the validation images: the ensemble, and Layer0's predictions alone."""
    val_dir = run.predict_dir("validation")
    parents = os.path.join(val_dir, "submission_parents_only.csv")
    _parents_only_submission(val_dir, parents, hierarchy, predict_cfg)
    return {
        "ensemble": _oid_eval(
            run.data_dir,
            os.path.join(val_dir, "submission.csv"),
            os.path.join(run.out_dir, "oid_metrics_ensemble.json"),
            hierarchy,
        ),
        "layer0_only": _oid_eval(
            run.data_dir, parents, os.path.join(run.out_dir, "oid_metrics_layer0_only.json"), hierarchy
        ),
    }


def _submit_stage(run: _DemoRun, hierarchy, predict_cfg, test_submission: str) -> dict:
    """OUT/submission.csv (the test images' submission, validated) and OUT/predictions_grid.png."""
    from ensembles.image_set import image_sizes_from_dir
    from ensembles.validate_submission import validate_submission
    from hierseg.serving.render import tile
    from hierseg_cli.ground_truth_view import draw_prediction_file

    submission = os.path.join(run.out_dir, "submission.csv")
    with atomic_write.atomic_path(submission) as tmp:
        shutil.copyfile(test_submission, tmp)
    problems = validate_submission(
        submission,
        expected_images=image_sizes_from_dir(os.path.join(run.data_dir, "test")),
        valid_mids=hierarchy.classes,
    )
    val_dir = run.predict_dir("validation")
    pngs = draw_prediction_file(  # six validation images, their ground truth beside
        os.path.join(val_dir, "predictions.jsonl"),
        os.path.join(run.data_dir, "validation"),
        os.path.join(val_dir, "visualize"),
        hierarchy.name,
        min_score=predict_cfg.visualize_min_score,
        limit=6,
    )
    grid = os.path.join(run.out_dir, "predictions_grid.png")
    tile(pngs, grid, columns=2)
    return {
        "submission": submission,
        "valid": not problems,
        "problems": [str(p) for p in problems][:20],
        "grid": grid,
    }


def run_demo(
    out_dir: str,
    *,
    num_images: int = 160,
    steps: int = 1000,
    seed: int = 0,
    config_file: str | None = None,
    params_override: list[str] | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Runs every stage (see the module docstring) and returns the summary (also in OUT/summary.json)."""
    out_dir = os.path.abspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    run = _DemoRun(out_dir, num_images, steps, seed, config_file or find_config(), params_override, show_progress)
    stages = Stages(out_dir, log)
    total_start = time.perf_counter()
    stages.run("synth", functools.partial(_synth_stage, run))
    stages.run("prepare", functools.partial(_prepare_stage, run))
    hierarchy = OidPaths.from_dir(run.data_dir).load_hierarchy()
    exports, coco = _train_layers(run, stages)

    from ensembles.config import PredictConfig
    from hierseg.serving.tta import parse_tta

    # A challenge submission: masks on the stored pixels, as the ground truth (no EXIF rotation).
    predict_cfg = PredictConfig(apply_exif=False)
    predict = _Predict(run, exports, hierarchy, predict_cfg)
    pred_test = stages.run("predict_test", predict.stage("test", True))
    stages.run("predict_validation", predict.stage("validation", False))
    oid = stages.run("oid_eval", functools.partial(_oid_eval_stage, run, hierarchy, predict_cfg))
    tta = parse_tta(DEMO_TTA)  # the same validation images with test-time augmentation, for comparison
    stages.run("predict_tta", predict.stage("validation", False, tta=tta, name="validation_tta"))
    oid_tta = stages.run(
        "oid_eval_tta",
        lambda: _oid_eval(
            run.data_dir,
            os.path.join(run.predict_dir("validation_tta"), "submission.csv"),
            os.path.join(out_dir, "oid_metrics_ensemble_tta.json"),
            hierarchy,
        ),
    )
    sub = stages.run(
        "submit", functools.partial(_submit_stage, run, hierarchy, predict_cfg, pred_test["files"]["submission.csv"])
    )

    summary = {
        "out_dir": out_dir,
        "config": run.config_file,
        "num_images": num_images,
        "steps": steps,
        "seed": seed,
        "stage_seconds": {k: v["seconds"] for k, v in stages.results.items()},
        "stages_skipped": [k for k, v in stages.results.items() if v["skipped"]],
        "total_seconds_this_run": round(time.perf_counter() - total_start, 1),
        "coco_mask_mAP": {k: v["mask/AP"] for k, v in coco.items()},
        "coco_box_mAP": {k: v["box/AP"] for k, v in coco.items()},
        "challenge_mAP_validation": {
            "ensemble": oid["ensemble"]["mAP"],
            "layer0_only": oid["layer0_only"]["mAP"],
            "ensemble_tta": oid_tta["mAP"],
        },
        "submission_valid": sub["valid"],
        "predict_images_per_second": pred_test["images_per_second"],
        "files": {
            "submission": sub["submission"],
            "predictions_grid": sub["grid"],
            "test_predictions": pred_test["files"].get("predictions.jsonl"),
            "oid_metrics": oid["ensemble"]["metrics_file"],
            "exports": exports,
            "summary": os.path.join(out_dir, "summary.json"),
        },
    }
    atomic_write.write_json(os.path.join(out_dir, "summary.json"), summary, indent=1)
    return summary


def format_summary(s: dict) -> str:
    """The summary as a few readable lines."""
    lines = ["", "hierseg demo summary", "--------------------"]
    for k, sec in s["stage_seconds"].items():
        lines.append(f"  {k:<20}{sec:8.1f} s{'  (earlier run)' if k in s['stages_skipped'] else ''}")
    lines.append(f"  {'total':<20}{sum(s['stage_seconds'].values()):8.1f} s")
    for k, v in s["coco_mask_mAP"].items():
        lines.append(f"COCO mask mAP {k}: {v:.3f} (box {s['coco_box_mAP'][k]:.3f})")
    ch = s["challenge_mAP_validation"]
    lines.append(
        f"challenge mAP (validation): ensemble {ch['ensemble']:.3f} vs Layer0 only (parents) "
        f"{ch['layer0_only']:.3f} ({ch['ensemble'] - ch['layer0_only']:+.3f})"
    )
    if "ensemble_tta" in ch:
        lines.append(
            f"challenge mAP (validation) with test-time augmentation ({DEMO_TTA}): {ch['ensemble_tta']:.3f} "
            f"({ch['ensemble_tta'] - ch['ensemble']:+.3f} over without)"
        )
    lines.append(f"submission valid: {s['submission_valid']}; predict {s['predict_images_per_second']:.2f} images/s")
    for k, v in s["files"].items():
        lines.append(f"  {k:<17}{v}")
    return "\n".join(lines)
