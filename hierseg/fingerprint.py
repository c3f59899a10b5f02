"""What a resumable command's output was made from, so a rerun resumes only matching work.

`hierseg prepare`, `train` and `predict` reuse finished work found in their output folder. Each records
a fingerprint there on its first run: the effective config (as plain data) and the identity of every
input file (path, size and modification time, or a gs:// object's size and generation). A rerun computes
the fingerprint again and :func:`check_or_record` refuses to mix outputs when anything differs, naming
the keys that changed; ``--overwrite`` (``overwrite=True``) starts afresh instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hierseg.errors import UsageError

FINGERPRINT_FILE = "fingerprint.json"


def file_identity(path: str) -> dict | None:
    """``{"size", "mtime_ns"}`` of a local file, ``{"size", "generation"}`` of a gs:// object, or
    None when it does not exist. Folders are identified by their path only (listing them is costly)."""
    if path.startswith("gs://"):
        import tensorflow as tf

        if not tf.io.gfile.exists(path):
            return None
        stat = tf.io.gfile.stat(path)
        return {"size": int(stat.length), "generation": int(stat.mtime_nsec)}
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path):
        return {"folder": True}
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def fingerprint(
    config: Mapping[str, Any],
    inputs: Mapping[str, str],
    files: Iterable[str] = (),
    identity: Callable[[str], Any] = file_identity,
) -> dict:
    """The fingerprint of a run: its effective ``config`` (plain data, e.g. ``to_dict(cfg)``), its named
    ``inputs`` (name -> path) and extra ``files``, each file identified by ``identity(path)``."""
    return {
        "config": json.loads(json.dumps(config, sort_keys=True, default=str)),
        "inputs": {name: {"path": str(p), "file": identity(str(p))} for name, p in sorted(inputs.items())},
        "files": {str(p): identity(str(p)) for p in sorted(files)},
    }


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Dotted key paths where two fingerprints (nested dicts) differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{path}.{key}" if path else str(key)
            out += differences(old.get(key), new.get(key), where) if key in old and key in new else [where]
        return out
    return [] if old == new else [path or "(all)"]


def check_or_record(
    folder: str,
    current: dict,
    *,
    overwrite: bool,
    has_outputs: bool,
    clear: Callable[[], None],
    read: Callable[[str], str],
    write: Callable[[str, str], None],
    what: str,
) -> None:
    """Refuses to resume ``folder`` when its recorded fingerprint differs from ``current``.

    Args:
      has_outputs: whether the folder holds outputs of an earlier run (a first run records only).
      clear: removes the earlier run's outputs (called for ``overwrite``).
      read, write: text file I/O for ``folder/fingerprint.json`` (local or gs://; write atomically).
      what: the command, for the message (``"hierseg prepare"``).
    Raises:
      UsageError: ``"{folder}: written by an earlier run with other inputs or config (differs: ...)"``.
    """
    path = f"{folder.rstrip('/')}/{FINGERPRINT_FILE}"
    if overwrite and has_outputs:
        clear()
    elif has_outputs:
        try:
            recorded = json.loads(read(path))
        except FileNotFoundError:
            recorded = None
        if recorded is None:
            raise UsageError(
                f"{folder}: holds outputs without a {FINGERPRINT_FILE} (an older {what} run); "
                "give --overwrite to start afresh, or another output folder"
            )
        changed = differences(recorded, current)
        if changed:
            shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more" if len(changed) > 6 else "")
            raise UsageError(
                f"{folder}: written by an earlier {what} run with other inputs or config (differs: {shown}); "
                "give --overwrite to start afresh, or another output folder"
            )
    write(path, json.dumps(current, indent=1, sort_keys=True))
