"""`hierseg predict` resumes only an output folder written from the same exports, images and config.

:func:`check_resume` runs first in :func:`hierseg_cli.workflows.predict_folder.predict_folder`: it removes
temporary files left by killed runs, then records (first run) or checks (rerun) the fingerprint
(:mod:`hierseg.fingerprint`) in ``OUT/fingerprint.json``. A rerun whose fingerprint differs stops with the
keys that changed, unless ``overwrite`` (``--overwrite``) empties the folder first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence

from hierseg.atomic_write import remove_leftovers, write_text
from hierseg.config import to_dict
from hierseg.fingerprint import check_or_record, fingerprint
from hierseg.hierarchy import Hierarchy
from hierseg.layout import ExportDir

PARTS_DIR = "parts"  # predict_folder's resumable part files
# Settings a resumed run may change: they do not change what a finished image's results are.
RESUMABLE_KEYS = ("batch_size", "chunk_size", "visualize", "visualize_min_score")


def check_resume(
    out_dir: str,
    exports: Sequence[str],
    images: str | Sequence[str],
    config,
    hierarchy: Hierarchy,
    *,
    overwrite: bool = False,
) -> None:
    """See the module docstring. ``config`` is the run's :class:`ensembles.config.PredictConfig`.

    Raises:
      hierseg.errors.UsageError: ``"{out_dir}: written by an earlier hierseg predict run with other inputs
        or config (differs: ...)"``.
    """
    os.makedirs(out_dir, exist_ok=True)
    parts = os.path.join(out_dir, PARTS_DIR)
    for folder in (out_dir, parts):
        remove_leftovers(folder)
    cfg = {k: v for k, v in to_dict(config).items() if k not in RESUMABLE_KEYS}
    cfg["images"] = images if isinstance(images, str) else sorted(map(str, images))
    cfg["hierarchy_sha1"] = hashlib.sha1(json.dumps(hierarchy.to_tree(), sort_keys=True).encode()).hexdigest()
    named = {f"layer{i}": str(e) for i, e in enumerate(exports)}
    files = [p for e in exports for p in ExportDir(str(e)).required_files()]

    def clear() -> None:
        for name in os.listdir(out_dir):
            path = os.path.join(out_dir, name)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)

    def read(path: str) -> str:
        with open(path, encoding="utf-8") as f:
            return f.read()

    check_or_record(
        out_dir,
        fingerprint(cfg, named, files),
        overwrite=overwrite,
        has_outputs=os.path.isdir(parts) and bool(os.listdir(parts)),
        clear=clear,
        read=read,
        write=write_text,
        what="hierseg predict",
    )
