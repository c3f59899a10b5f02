"""The annotation stage: CSVs -> per layer and split, the instances, gray boxes and images to write.

Everything here is vectorized pandas/numpy on whole tables (no per-row Python), so the full challenge
scale (2.1M masks on 848k images) plans in seconds. Pixels are not touched: see :mod:`data_prep.pixels`.

Layer assignment (one ``MID -> (target MID, role)`` dict per layer, computed once from the hierarchy,
then applied with ``map``):

* ``target``: the class itself is in the layer, or its nearest ancestor in the layer is (Layer0: Man ->
  Person, Brown bear -> Carnivore, Teddy bear -> Toy; ties and overrides: ``Hierarchy.ancestor_in``);
* ``gray``: not in the layer and no layer ancestor, but some descendant is a target (Person, Car,
  Carnivore in Layer1): the instance is dropped and its box painted gray, since the object may be an
  unlabeled Man or Van and must not teach "background";
* ``drop``: neither (depth-0 leaves in Layer1).

Box-only instances (``assign_layer(..., with_box_only=True)``): a bbox-CSV box of a target class that
has no mask row (same image, class and box at 1e-5) is kept as an instance with ``has_mask = False``
and an empty ``mask_path``, so the detector learns it as an object (box losses) instead of as
background; it is written with ``image/object/mask_valid = 0`` and an empty mask and never enters the
mask loss. Only images that already hold a target mask get them (images are chosen by their masks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hierseg.hierarchy import Hierarchy

ROLE_TARGET, ROLE_GRAY, ROLE_DROP = "target", "gray", "drop"
_BOX_QUANT = 1e5  # box coordinates are matched between the masks and bbox CSVs at 1e-5 (6 published digits)


@dataclass
class SplitTables:
    """The annotation tables of one split, as read (bad rows already dropped and counted).

    Attributes:
      masks: segmentation CSV rows: MaskPath, ImageID, LabelName, BoxXMin, BoxXMax, BoxYMin, BoxYMax
        (normalized [0, 1]) and IsGroupOf (bool, joined from the bbox CSV; False when unmatched).
      boxes: bbox CSV rows: ImageID, LabelName, XMin, XMax, YMin, YMax, IsGroupOf (boxes with or
        without masks; used for gray fill).
      source_split: where the images and mask zips live ("train" for a held-out validation split).
      skips: rows dropped while reading, per reason (``masks_csv.unknown_mid``: count).
      skip_examples: a few dropped rows per reason, as ``"file:line: row"``.
      image_ids: sorted unique ImageIDs (object [U]); ``masks["img"]`` (int32) indexes it, so the
        per-image work below runs on integers instead of strings. Filled in by ``__post_init__``.
    """

    masks: pd.DataFrame
    boxes: pd.DataFrame
    source_split: str
    skips: dict[str, int] = field(default_factory=dict)
    image_ids: np.ndarray | None = None
    skip_examples: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.image_ids is None or "img" not in self.masks:
            codes, uniques = pd.factorize(self.masks["ImageID"], sort=True)
            self.masks = self.masks.assign(img=codes.astype(np.int32))
            self.image_ids = np.asarray(uniques, dtype=object)
        self._cache: dict = {}

    # Conversions shared by every layer (each costs about a second at full scale).
    def label_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """(int codes [N] of LabelName, the distinct MIDs (object [C]))."""
        if "labels" not in self._cache:
            codes, uniques = pd.factorize(self.masks["LabelName"])
            self._cache["labels"] = (codes, np.asarray(uniques, dtype=object))
        return self._cache["labels"]

    def mask_paths(self) -> np.ndarray:
        """MaskPath as an object array [N]."""
        if "mask_paths" not in self._cache:
            self._cache["mask_paths"] = self.masks["MaskPath"].to_numpy(dtype=object)
        return self._cache["mask_paths"]


def layer_roles(
    hierarchy: Hierarchy, targets: Sequence[str], overrides: Mapping[str, str] | None = None
) -> dict[str, tuple[str | None, str]]:
    """MID -> (target MID or None, role) for every class of the hierarchy, for one layer's targets.

    Overrides whose chosen ancestor is not a target of this layer are ignored here (they are meant for
    another layer of the grouping).
    """
    tset = set(targets)
    ov = {k: v for k, v in (overrides or {}).items() if v in tset}
    out: dict[str, tuple[str | None, str]] = {}
    for mid in hierarchy.classes:
        t = hierarchy.ancestor_in(mid, tset, ov)
        if t is not None:
            out[mid] = (t, ROLE_TARGET)
        elif hierarchy.descendants(mid) & tset:
            out[mid] = (None, ROLE_GRAY)
        else:
            out[mid] = (None, ROLE_DROP)
    return out


def attach_group_of(masks: pd.DataFrame, boxes: pd.DataFrame) -> pd.DataFrame:
    """Adds ``IsGroupOf`` to the mask rows from the bbox CSV row with the same image, class and box.

    The masks CSV has no IsGroupOf and the bbox CSV no BoxID; boxes are matched on coordinates
    quantized to 1e-5 (exact float equality is unstable across writers). Unmatched masks get False.
    """
    masks = masks.copy()
    if boxes.empty or not boxes["IsGroupOf"].any():
        masks["IsGroupOf"] = False
        return masks

    def keys(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
        out = pd.DataFrame({"ImageID": df["ImageID"].to_numpy(), "LabelName": df["LabelName"].to_numpy()})
        for i, c in enumerate(cols):
            out[f"q{i}"] = np.rint(df[c].to_numpy(np.float64) * _BOX_QUANT).astype(np.int32)
        return out

    right = keys(boxes, ("XMin", "XMax", "YMin", "YMax"))
    right["IsGroupOf"] = boxes["IsGroupOf"].to_numpy(bool)
    right = right[right["IsGroupOf"]].drop_duplicates(subset=["ImageID", "LabelName", "q0", "q1", "q2", "q3"])
    left = keys(masks, ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"))
    merged = left.merge(right, how="left", on=["ImageID", "LabelName", "q0", "q1", "q2", "q3"], sort=False)
    masks["IsGroupOf"] = merged["IsGroupOf"].fillna(False).to_numpy(bool)
    return masks


@dataclass
class LayerSplit:
    """What one layer writes for one split, before balancing.

    Attributes:
      instances: kept target instances, one row each, sorted by image then CSV order: img (code into
        the tables' image_ids), image_id, mask_path, source_mid (annotated MID), mid (layer class MID), class_id (1..K), xmin, xmax, ymin,
        ymax (normalized), is_crowd (bool), has_mask (bool; False for a box-only instance, whose
        mask_path is ""; within an image the masked instances come first).
      gray_boxes: boxes to paint gray, only for images of ``instances``: img, image_id, xmin, xmax, ymin,
        ymax, sorted by img.
      images: the sorted unique ImageIDs of ``instances`` (images with no target are left out).
      image_codes: int32 [I], their codes (ascending, parallel to ``images``).
      dropped: instances dropped by the layer assignment, per reason (``non_target_leaf``,
        ``non_target_parent`` (gray-filled), ``no_target_image`` for instances of images left out).
    """

    instances: pd.DataFrame
    gray_boxes: pd.DataFrame
    images: np.ndarray
    image_codes: np.ndarray
    dropped: dict[str, int]


def _quantized_box_keys(df: pd.DataFrame, image_codes: np.ndarray, cols: Sequence[str]) -> pd.DataFrame:
    """(img, LabelName, q0..q3) keys of box rows, coordinates quantized to 1e-5 (see attach_group_of)."""
    out = pd.DataFrame({"img": image_codes, "LabelName": df["LabelName"].to_numpy()})
    for i, c in enumerate(cols):
        out[f"q{i}"] = np.rint(df[c].to_numpy(np.float64) * _BOX_QUANT).astype(np.int32)
    return out


def box_only_instances(
    tables: SplitTables,
    roles: Mapping[str, tuple[str | None, str]],
    class_ids: Mapping[str, int],
    has_target: np.ndarray,
) -> pd.DataFrame:
    """Target-class bbox-CSV boxes without a mask row, on images with a target mask (vectorized).

    Args:
      has_target: bool ``[len(tables.image_ids)]``: the image holds a target mask instance.

    Returns:
      the instance columns of :class:`LayerSplit` with ``mask_path = ""`` and ``has_mask = False``
      (is_crowd from the box's IsGroupOf), in bbox-CSV order.
    """
    b = tables.boxes
    cols = ["img", "image_id", "mask_path", "source_mid", "mid", "class_id"]
    cols += ["xmin", "xmax", "ymin", "ymax", "is_crowd", "has_mask"]
    if not len(b):
        return pd.DataFrame({c: [] for c in cols})
    target_of = {k: v[0] for k, v in roles.items() if v[1] == ROLE_TARGET}
    labels = b["LabelName"].to_numpy()
    is_target = pd.Series(labels).isin(list(target_of)).to_numpy()
    img = pd.Index(tables.image_ids).get_indexer(b["ImageID"].to_numpy()).astype(np.int32)
    sel = is_target & (img >= 0)
    sel[sel] = has_target[img[sel]]
    bsel = b[sel]
    keys = _quantized_box_keys(bsel, img[sel], ("XMin", "XMax", "YMin", "YMax"))
    m = tables.masks
    mask_keys = _quantized_box_keys(m, m["img"].to_numpy(np.int32), ("BoxXMin", "BoxXMax", "BoxYMin", "BoxYMax"))
    merged = keys.merge(mask_keys.drop_duplicates(), how="left", on=list(keys.columns), indicator=True, sort=False)
    no_mask = (merged["_merge"] == "left_only").to_numpy()
    rows = bsel[no_mask]
    mids = pd.Series(rows["LabelName"].to_numpy()).map(target_of)
    return pd.DataFrame(
        {
            "img": img[sel][no_mask],
            "image_id": rows["ImageID"].to_numpy(dtype=object),
            "mask_path": np.full(len(rows), "", dtype=object),
            "source_mid": rows["LabelName"].to_numpy(dtype=object),
            "mid": mids.to_numpy(dtype=object),
            "class_id": mids.map(class_ids).to_numpy(np.int32),
            "xmin": rows["XMin"].to_numpy(np.float32),
            "xmax": rows["XMax"].to_numpy(np.float32),
            "ymin": rows["YMin"].to_numpy(np.float32),
            "ymax": rows["YMax"].to_numpy(np.float32),
            "is_crowd": rows["IsGroupOf"].to_numpy(bool),
            "has_mask": np.zeros(len(rows), bool),
        }
    )


def assign_layer(
    tables: SplitTables,
    roles: Mapping[str, tuple[str | None, str]],
    class_ids: Mapping[str, int],
    with_box_only: bool = False,
) -> LayerSplit:
    """Applies one layer's roles to one split's tables (vectorized).

    ``with_box_only`` adds the box-only instances (:func:`box_only_instances`) after each image's
    masked instances.
    """
    m = tables.masks
    codes, cats = tables.label_codes()
    # Per category: target MID and role; unknown MIDs (readers in skip mode already dropped them) -> drop.
    cat_target = np.array([(roles.get(c, (None, ROLE_DROP))[0] or "") for c in cats], dtype=object)
    kinds = (ROLE_TARGET, ROLE_GRAY, ROLE_DROP)
    cat_role = np.array([kinds.index(roles.get(c, (None, ROLE_DROP))[1]) for c in cats], dtype=np.int8)
    role = cat_role[codes] if len(cats) else np.zeros(0, np.int8)
    is_target = role == 0
    is_gray = role == 1

    target_mid = cat_target[codes[is_target]]
    img = m["img"].to_numpy(np.int32)[is_target]
    order = np.argsort(img, kind="stable")  # by image, then CSV order (deterministic for given files)
    sel = np.flatnonzero(is_target)[order]
    img = img[order]
    target_mid = target_mid[order]
    inst = pd.DataFrame(
        {
            "img": img,
            "image_id": tables.image_ids[img],
            "mask_path": tables.mask_paths()[sel],
            "source_mid": np.asarray(cats, dtype=object)[codes[sel]],
            "mid": target_mid,
            "class_id": pd.Series(target_mid).map(class_ids).to_numpy(np.int32),
            "xmin": m["BoxXMin"].to_numpy(np.float32)[sel],
            "xmax": m["BoxXMax"].to_numpy(np.float32)[sel],
            "ymin": m["BoxYMin"].to_numpy(np.float32)[sel],
            "ymax": m["BoxYMax"].to_numpy(np.float32)[sel],
            "is_crowd": m["IsGroupOf"].to_numpy(bool)[sel],
            "has_mask": np.ones(len(sel), bool),
        }
    )
    image_codes = np.unique(img)
    has_target = np.zeros(len(tables.image_ids), bool)
    has_target[image_codes] = True
    if with_box_only:
        extra = box_only_instances(tables, roles, class_ids, has_target)
        if len(extra):
            inst = pd.concat([inst, extra], ignore_index=True)
            inst = inst.iloc[np.argsort(inst["img"].to_numpy(), kind="stable")].reset_index(drop=True)

    # Gray boxes: non-target parents' masks' boxes, plus bbox-CSV boxes of such classes (boxes that
    # have no mask still mark an object that may be an unlabeled target).
    g_img = m["img"].to_numpy(np.int32)[is_gray]
    gray = {
        "img": g_img,
        "xmin": m["BoxXMin"].to_numpy(np.float32)[is_gray],
        "xmax": m["BoxXMax"].to_numpy(np.float32)[is_gray],
        "ymin": m["BoxYMin"].to_numpy(np.float32)[is_gray],
        "ymax": m["BoxYMax"].to_numpy(np.float32)[is_gray],
    }
    b = tables.boxes
    if len(b):
        gray_mids = [k for k, v in roles.items() if v[1] == ROLE_GRAY]
        bsel = b["LabelName"].isin(gray_mids).to_numpy() if gray_mids else np.zeros(len(b), bool)
        if bsel.any():
            # ImageID -> code only for the selected rows (-1: image without masks, never written).
            b_img = pd.Index(tables.image_ids).get_indexer(b["ImageID"].to_numpy()[bsel]).astype(np.int32)
            gray["img"] = np.concatenate([gray["img"], b_img])
            for k, c in (("xmin", "XMin"), ("xmax", "XMax"), ("ymin", "YMin"), ("ymax", "YMax")):
                gray[k] = np.concatenate([gray[k], b[c].to_numpy(np.float32)[bsel]])
    keep = (gray["img"] >= 0) & has_target[np.maximum(gray["img"], 0)]
    gray = pd.DataFrame({k: v[keep] for k, v in gray.items()}).drop_duplicates()
    gray = gray.iloc[np.lexsort((gray["xmax"], gray["ymax"], gray["xmin"], gray["ymin"], gray["img"]))]
    gray = gray.reset_index(drop=True)
    gray.insert(1, "image_id", tables.image_ids[gray["img"].to_numpy()])

    dropped = {"non_target_leaf": int((role == 2).sum()), "non_target_parent": int(is_gray.sum())}
    return LayerSplit(inst, gray, tables.image_ids[image_codes], image_codes, dropped)


def class_image_pairs(instances: pd.DataFrame, image_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique (image index into the split's images, class_id) pairs of a layer split, int64 [P] each."""
    img_idx = np.searchsorted(image_codes, instances["img"].to_numpy())
    key = img_idx.astype(np.int64) * 65536 + instances["class_id"].to_numpy(np.int64)
    key = np.unique(key)
    return key // 65536, key % 65536


def split_off_validation(tables: SplitTables, fraction: float, seed: int) -> tuple[SplitTables, SplitTables]:
    """Holds out ``fraction`` of the images of a train split as validation (deterministic for ``seed``).

    Both returned tables keep ``source_split`` of the input: the pixels still come from the train files.
    """
    ids = tables.image_ids
    rng = np.random.default_rng([seed, 7])
    n_val = int(round(len(ids) * fraction))
    is_val = np.zeros(len(ids), bool)
    is_val[rng.permutation(len(ids))[:n_val]] = True
    mv = is_val[tables.masks["img"].to_numpy()]
    bv = tables.boxes["ImageID"].isin(ids[is_val]).to_numpy() if len(tables.boxes) else np.zeros(0, bool)
    # Both halves keep the full image_ids and codes (a code is an index, not a count).
    train = SplitTables(
        tables.masks[~mv].reset_index(drop=True),
        tables.boxes[~bv].reset_index(drop=True),
        tables.source_split,
        dict(tables.skips),
        ids,
        dict(tables.skip_examples),
    )
    val = SplitTables(
        tables.masks[mv].reset_index(drop=True),
        tables.boxes[bv].reset_index(drop=True),
        tables.source_split,
        {},
        ids,
    )
    return train, val
