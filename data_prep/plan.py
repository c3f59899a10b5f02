"""The whole annotation stage as one function: CSVs -> a :class:`LayerPlan` per layer (no pixels).

:func:`load_tables` reads the split CSVs (bad rows skipped and counted); :func:`plan_layers` assigns
layers, balances the training split, assigns examples to shards and builds the manifest. Both are
vectorized; ``bench/prepare_annotations.py`` times them at full challenge scale.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from data_prep import annotations as A
from data_prep.balance import Balanced, balance
from data_prep.config import PrepareConfig
from data_prep.pixels import ImageTask
from data_prep.report import balance_report
from data_prep.shards import assign_shards, shard_count
from hierseg.hierarchy import Hierarchy
from hierseg.label_map import LabelMap
from hierseg.oid.layout import OidPaths, path_exists
from hierseg.oid.tables import read_bbox_csv, read_segmentation_csv

_SPLIT_SALT = {"train": 1, "validation": 2}


def load_tables(
    paths: OidPaths, hierarchy: Hierarchy, config: PrepareConfig, local_paths: OidPaths | None = None
) -> dict[str, A.SplitTables]:
    """Reads the masks and bbox CSVs of every split in ``config.splits``.

    When the validation CSVs do not exist, ``config.validation_fraction`` of the train images is held
    out as validation (pixels still read from the train folders).

    Args:
      paths: the dataset layout (for image folders; may be gs://).
      local_paths: the same layout with the CSVs available locally (see storage.localize); default paths.
    """
    local_paths = local_paths or paths
    valid = list(hierarchy.classes)
    out: dict[str, A.SplitTables] = {}
    have_val = path_exists(local_paths.masks_csv("validation"))
    for split in ("train", "validation"):
        if split == "validation" and not have_val:
            continue
        masks, mskips = read_segmentation_csv(local_paths.masks_csv(split), valid_mids=valid, on_error="skip")
        masks = masks.drop(columns=["Clicks", "PredictedIoU", "BoxID"])
        if path_exists(local_paths.bbox_csv(split)):
            boxes, bskips = read_bbox_csv(local_paths.bbox_csv(split), valid_mids=valid, on_error="skip")
        else:
            boxes, bskips = (
                pd.DataFrame(columns=["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf"]),
                None,
            )
        masks = A.attach_group_of(masks, boxes)
        skips = {f"masks_csv.{k}": v for k, v in mskips.counts.items()}
        examples = {f"masks_csv.{k}": v for k, v in mskips.examples.items()}
        if bskips is not None:
            skips.update({f"bbox_csv.{k}": v for k, v in bskips.counts.items()})
            examples.update({f"bbox_csv.{k}": v for k, v in bskips.examples.items()})
        out[split] = A.SplitTables(masks, boxes, split, skips, skip_examples=examples)
    if "validation" not in out and "validation" in config.splits:
        out["train"], out["validation"] = A.split_off_validation(out["train"], config.validation_fraction, config.seed)
    return {s: t for s, t in out.items() if s in config.splits}


@dataclass
class SplitPlan:
    """One layer's split, ready for the pixel stage.

    Attributes:
      instances, gray_boxes, images, image_codes, dropped: see :class:`data_prep.annotations.LayerSplit`.
      balanced: copies / weights / repeat factors per image of ``images``.
      examples: one row per written example in shard order: image_index, copy, shard, position,
        image_id, weight.
      num_shards: shards of the split.
      report: per-class counts before/after balancing (see :func:`data_prep.report.balance_report`).
    """

    layer: int
    split: str
    source_split: str
    instances: pd.DataFrame
    gray_boxes: pd.DataFrame
    images: np.ndarray
    image_codes: np.ndarray
    dropped: dict[str, int]
    balanced: Balanced
    examples: pd.DataFrame
    num_shards: int
    report: pd.DataFrame
    _starts: np.ndarray = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # Row ranges per image: instances and gray boxes are sorted by image code.
        inst = self.instances["img"].to_numpy()
        self._starts = np.append(np.searchsorted(inst, self.image_codes, side="left"), len(inst))
        g = self.gray_boxes["img"].to_numpy()
        self._gray_lo = np.searchsorted(g, self.image_codes, side="left")
        self._gray_hi = np.searchsorted(g, self.image_codes, side="right")
        self._arrays = None  # numpy views of the columns, built on first task() (slicing them is ~100x
        # cheaper than DataFrame.iloc, which matters at 848k images)

    def _columns(self) -> dict[str, np.ndarray]:
        if self._arrays is None:
            i, g = self.instances, self.gray_boxes
            self._arrays = {
                "mask_path": i["mask_path"].to_numpy(dtype=object),
                "mid": i["mid"].to_numpy(dtype=object),
                "class_id": i["class_id"].to_numpy(np.int32),
                "boxes": i[["ymin", "xmin", "ymax", "xmax"]].to_numpy(np.float32).reshape(-1, 4),
                "is_crowd": i["is_crowd"].to_numpy(bool),
                "has_mask": i["has_mask"].to_numpy(bool),
                "gray": g[["ymin", "xmin", "ymax", "xmax"]].to_numpy(np.float32).reshape(-1, 4),
            }
        return self._arrays

    def task(self, image_index: int, weight: float = 1.0) -> ImageTask:
        """The pixel-stage task of one image (by index into ``images``)."""
        c = self._columns()
        lo, hi = int(self._starts[image_index]), int(self._starts[image_index + 1])
        glo, ghi = int(self._gray_lo[image_index]), int(self._gray_hi[image_index])
        return ImageTask(
            image_id=str(self.images[image_index]),
            source_split=self.source_split,
            mask_paths=tuple(c["mask_path"][lo:hi].tolist()),
            mids=tuple(c["mid"][lo:hi].tolist()),
            class_ids=c["class_id"][lo:hi].copy(),
            boxes=c["boxes"][lo:hi].copy(),
            is_crowd=c["is_crowd"][lo:hi].copy(),
            has_mask=c["has_mask"][lo:hi].copy(),
            gray_boxes=c["gray"][glo:ghi].copy(),
            weight=float(weight),
            coco_image_id=int(image_index) + 1,  # images are sorted by ImageID: the COCO JSON's id
        )

    def shard_tasks(self, shard: int) -> Iterator[ImageTask]:
        """Tasks of one shard in write order."""
        ex = self.examples[self.examples["shard"] == shard]
        for idx, w in zip(ex["image_index"].to_numpy(), ex["weight"].to_numpy()):
            yield self.task(int(idx), float(w))


@dataclass
class LayerPlan:
    layer: int
    label_map: LabelMap
    splits: dict[str, SplitPlan]


def plan_layers(tables: dict[str, A.SplitTables], hierarchy: Hierarchy, config: PrepareConfig) -> list[LayerPlan]:
    """Layer assignment, balancing (train only) and shard assignment for every layer and split."""
    layers = hierarchy.layers(config.hierarchy.depth_groups)
    wanted = range(len(layers)) if config.layers is None else config.layers
    plans = []
    for li in wanted:
        if not 0 <= li < len(layers):
            raise ValueError(f"layers: {li} is not a layer of depth groups {config.hierarchy.depth_groups}")
        mids = layers[li]
        label_map = LabelMap.from_classes(mids, dict(hierarchy.names))
        class_ids = {m: i + 1 for i, m in enumerate(mids)}
        roles = A.layer_roles(hierarchy, mids, config.hierarchy.ancestor_overrides)
        splits = {}
        for split, t in tables.items():
            # Box-only instances train the box losses; only in train (the mask metric needs masks).
            ls = A.assign_layer(t, roles, class_ids, with_box_only=config.box_only_instances and split == "train")
            pair_img, pair_cls = A.class_image_pairs(ls.instances, ls.image_codes)
            if split == "train":
                bal = balance(pair_img, pair_cls, len(ls.images), len(mids), config.balance, config.seed)
            else:
                bal = balance(
                    pair_img, pair_cls, len(ls.images), len(mids), type(config.balance)(mode="none"), config.seed
                )
            configured = getattr(config.num_shards, split)
            n_shards = shard_count(int(bal.copies.sum()), configured, config.num_shards.min_examples_per_shard)
            ex = assign_shards(bal.copies, n_shards, config.seed, salt=li * 16 + _SPLIT_SALT.get(split, 3))
            ex["image_id"] = ls.images[ex["image_index"].to_numpy()] if len(ex) else np.array([], dtype=object)
            ex["weight"] = bal.weights[ex["image_index"].to_numpy()] if len(ex) else np.array([], np.float32)
            img_idx = np.searchsorted(ls.image_codes, ls.instances["img"].to_numpy())
            report = balance_report(img_idx, ls.instances["class_id"].to_numpy(), bal.copies, bal.weights, label_map)
            dropped = dict(ls.dropped)
            dropped["left_out_by_balance"] = int((bal.copies == 0).sum())
            splits[split] = SplitPlan(
                li,
                split,
                t.source_split,
                ls.instances,
                ls.gray_boxes,
                ls.images,
                ls.image_codes,
                dropped,
                bal,
                ex,
                n_shards,
                report,
            )
        plans.append(LayerPlan(li, label_map, splits))
    return plans


def manifest(plans: Sequence[LayerPlan], dropped_masks: dict[int, set[str]] | None = None) -> pd.DataFrame:
    """One row per kept instance per written copy: image_id, mask_path ("" for a box-only instance), mid,
    source_mid, class_id, has_mask, layer, split, shard (index), copy. ``dropped_masks`` (layer -> MaskPaths dropped in the pixel stage) are removed."""
    frames = []
    for lp in plans:
        for split, sp in lp.splits.items():
            inst = sp.instances
            img_idx = np.searchsorted(sp.image_codes, inst["img"].to_numpy())
            # Each instance repeats once per copy of its image (integer work only, no join): the
            # examples sorted by (image, copy) give every image a contiguous run of its copies.
            by_image = np.lexsort((sp.examples["copy"].to_numpy(), sp.examples["image_index"].to_numpy()))
            copies = sp.balanced.copies.astype(np.int64)
            first = np.cumsum(copies) - copies  # run start of each image in by_image
            reps = copies[img_idx]
            row = np.repeat(np.arange(len(inst)), reps)
            within = np.arange(len(row)) - np.repeat(np.cumsum(reps) - reps, reps)
            ex = by_image[first[img_idx[row]] + within]

            def col(name: str, dtype=None, inst=inst, row=row) -> np.ndarray:
                return inst[name].to_numpy(dtype)[row]

            df = pd.DataFrame(
                {
                    "image_id": col("image_id", object),
                    "mask_path": col("mask_path", object),
                    "mid": col("mid", object),
                    "source_mid": col("source_mid", object),
                    "class_id": col("class_id", np.int32),
                    "has_mask": col("has_mask", bool),
                    "layer": np.int32(lp.layer),
                    "split": split,
                    "shard": sp.examples["shard"].to_numpy(np.int32)[ex],
                    "copy": sp.examples["copy"].to_numpy(np.int32)[ex],
                }
            )
            if dropped_masks and dropped_masks.get(lp.layer):
                df = df[~df["mask_path"].isin(dropped_masks[lp.layer])]
                # An image left without masked instances was not written: its box-only rows go too.
                masked = df["has_mask"].to_numpy()
                df = df[masked | df["image_id"].isin(df["image_id"][masked]).to_numpy()]
            frames.append(df)
    if not frames:
        return pd.DataFrame(
            columns=["image_id", "mask_path", "mid", "source_mid", "class_id", "has_mask"]
            + ["layer", "split", "shard", "copy"]
        )
    return pd.concat(frames, ignore_index=True)
