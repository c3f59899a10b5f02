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
import json
import os
import shutil
import time
from collections.abc import Callable

from hierseg import atomic_write
from hierseg.config.params import load, merge
from hierseg.layout import ModelDir, PreparedLayer
from hierseg.oid.layout import OidPaths

STAGES_DIR = "stages"
DEMO_TTA = "flip"  # test-time augmentation the demo compares against plain prediction
DEFAULT_CONFIG = "tiny_cpu.yaml"


def find_config(name: str = DEFAULT_CONFIG) -> str:
    """A shipped experiment config by name (:func:`hierseg.config.shipped.find_config`)."""
    from hierseg.config.shipped import find_config as find_shipped

    return find_shipped(name)


class Stages:
    """Runs named stages once: a stage whose result file exists is skipped and its result reused."""

    def __init__(self, out_dir: str, log: Callable[[str], None] = print) -> None:
        self.dir = os.path.join(out_dir, STAGES_DIR)
        os.makedirs(self.dir, exist_ok=True)
        self.log = log
        self.results: dict[str, dict] = {}

    def run(self, name: str, fn: Callable[[], dict]) -> dict:
        path = os.path.join(self.dir, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                rec = json.load(f)
            rec["skipped"] = True
            self.log(f"[demo] {name}: done by an earlier run ({rec['seconds']:.1f} s then), skipped")
        else:
            self.log(f"[demo] {name} ...")
            start = time.perf_counter()
            result = fn()
            rec = {"seconds": round(time.perf_counter() - start, 2), "result": result}
            atomic_write.write_json(path, rec, indent=1, default=str)
            rec["skipped"] = False
            self.log(f"[demo] {name}: {rec['seconds']:.1f} s")
        self.results[name] = rec
        return rec["result"]


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
    config_file = config_file or find_config()
    stages = Stages(out_dir, log)
    total_start = time.perf_counter()
    data_dir = os.path.join(out_dir, "data")
    prepared = os.path.join(out_dir, "prepared")

    def synth() -> dict:
        from hierseg.synth import generate_dataset

        s = generate_dataset(data_dir, num_images=num_images, seed=seed, show_progress=show_progress)
        return {"splits": {k: v.get("images") for k, v in s["splits"].items()}, "classes": len(s["classes"])}

    stages.run("synth", synth)

    def prepare() -> dict:
        from data_prep.config import PrepareConfig
        from data_prep.prepare import prepare as run_prepare

        res = run_prepare(data_dir, prepared, PrepareConfig(), num_workers=2, show_progress=show_progress)
        return {"out_dir": prepared, "summary": res if isinstance(res, dict) else str(res)}

    stages.run("prepare", prepare)

    hierarchy = OidPaths.from_dir(data_dir).load_hierarchy()
    exports, coco = [], {}
    for layer in (0, 1):
        layer_dir = PreparedLayer.of(prepared, layer).root
        model_dir = os.path.join(out_dir, "models", f"layer{layer}")
        export_dir = os.path.join(out_dir, "exports", f"layer{layer}")
        cfg = _experiment(config_file, layer_dir, steps, params_override)

        def train(cfg=cfg, model_dir=model_dir) -> dict:
            from hierseg.training.loop import train as run_train
            from hierseg.training.strategy import make_strategy

            res = run_train(cfg, model_dir, make_strategy("cpu"), show_progress=show_progress)
            return {
                "step": res["step"],
                "loss": res["metrics"].get("loss"),
                "images_per_second": res["images_per_second"],
                "model_dir": model_dir,
            }

        stages.run(f"train{layer}", train)

        def evaluate(cfg=cfg, model_dir=model_dir) -> dict:
            from hierseg.evaluation.evaluator import evaluate as run_eval

            m = run_eval(
                cfg, model_dir, output_json=ModelDir(model_dir).eval_metrics_json(steps), show_progress=show_progress
            )
            return {
                "mask/AP": m["mask/AP"],
                "box/AP": m["box/AP"],
                "mask/AP50": m.get("mask/AP50"),
                "num_images": m.get("num_images"),
            }

        coco[f"layer{layer}"] = stages.run(f"eval{layer}", evaluate)

        def export(cfg=cfg, model_dir=model_dir, export_dir=export_dir) -> dict:
            from hierseg.serving.export import export_saved_model

            export_saved_model(cfg, model_dir, export_dir)
            return {"export_dir": export_dir}

        stages.run(f"export{layer}", export)
        exports.append(export_dir)

    from ensembles.config import PredictConfig
    from hierseg_cli.workflows.predict_folder import predict_folder

    # A challenge submission: masks on the stored pixels, as the ground truth (no EXIF rotation).
    predict_cfg = PredictConfig(apply_exif=False)
    predictors = None

    def predictors_once():
        nonlocal predictors
        if predictors is None:
            from hierseg.serving.predictor import LayerPredictor

            predictors = (LayerPredictor(exports[0]), LayerPredictor(exports[1]))
        return predictors

    def predict(split: str, visualize: bool, tta=None, name: str | None = None) -> Callable[[], dict]:
        def fn() -> dict:
            res = predict_folder(
                *exports,
                os.path.join(data_dir, split),
                os.path.join(out_dir, f"predict_{name or split}"),
                dataclasses.replace(predict_cfg, visualize=visualize, tta=tta or predict_cfg.tta),
                hierarchy=hierarchy,
                show_progress=show_progress,
                predictors=predictors_once(),
            )
            return {
                k: res[k]
                for k in (
                    "num_images",
                    "num_ok",
                    "num_unreadable",
                    "num_instances",
                    "images_per_second",
                    "timing",
                    "files",
                )
            }

        return fn

    pred_test = stages.run("predict_test", predict("test", True))
    stages.run("predict_validation", predict("validation", False))

    def oid_eval() -> dict:
        val_dir = os.path.join(out_dir, "predict_validation")
        parents = os.path.join(val_dir, "submission_parents_only.csv")
        _parents_only_submission(val_dir, parents, hierarchy, predict_cfg)
        return {
            "ensemble": _oid_eval(
                data_dir,
                os.path.join(val_dir, "submission.csv"),
                os.path.join(out_dir, "oid_metrics_ensemble.json"),
                hierarchy,
            ),
            "layer0_only": _oid_eval(
                data_dir, parents, os.path.join(out_dir, "oid_metrics_layer0_only.json"), hierarchy
            ),
        }

    oid = stages.run("oid_eval", oid_eval)
    from hierseg.serving.tta import parse_tta

    tta = parse_tta(DEMO_TTA)  # the same validation images with test-time augmentation, for comparison
    stages.run("predict_tta", predict("validation", False, tta=tta, name="validation_tta"))
    oid_tta = stages.run(
        "oid_eval_tta",
        lambda: _oid_eval(
            data_dir,
            os.path.join(out_dir, "predict_validation_tta", "submission.csv"),
            os.path.join(out_dir, "oid_metrics_ensemble_tta.json"),
            hierarchy,
        ),
    )

    def submit() -> dict:
        from ensembles.image_set import image_sizes_from_dir
        from ensembles.validate_submission import validate_submission
        from hierseg.serving.render import tile
        from hierseg_cli.ground_truth_view import draw_prediction_file

        submission = os.path.join(out_dir, "submission.csv")
        with atomic_write.atomic_path(submission) as tmp:
            shutil.copyfile(pred_test["files"]["submission.csv"], tmp)
        problems = validate_submission(
            submission,
            expected_images=image_sizes_from_dir(os.path.join(data_dir, "test")),
            valid_mids=hierarchy.classes,
        )
        val_dir = os.path.join(out_dir, "predict_validation")
        pngs = draw_prediction_file(  # six validation images, their ground truth beside
            os.path.join(val_dir, "predictions.jsonl"),
            os.path.join(data_dir, "validation"),
            os.path.join(val_dir, "visualize"),
            hierarchy.name,
            min_score=predict_cfg.visualize_min_score,
            limit=6,
        )
        grid = os.path.join(out_dir, "predictions_grid.png")
        tile(pngs, grid, columns=2)
        return {
            "submission": submission,
            "valid": not problems,
            "problems": [str(p) for p in problems][:20],
            "grid": grid,
        }

    sub = stages.run("submit", submit)

    summary = {
        "out_dir": out_dir,
        "config": config_file,
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
