"""Atomic file writes: a file appears whole under its final name, or not at all.

Every writer in hierseg, data_prep, ensembles and hierseg_cli goes through this module instead of
writing its own temporary-file-then-rename. A write goes to a temporary file next to the target
(``<path>.tmp-<pid>-<thread>``, so it stays on the same file system and the rename is atomic) and is
renamed into place once complete. When the write fails or is interrupted (any exception, including
``KeyboardInterrupt``), the temporary file is removed and the final path is left untouched.

Paths may be local or URLs (``gs://bucket/x``, anything ``tf.io.gfile`` opens). URLs are written
through ``tf.io.gfile`` to a temporary object and renamed (on GCS: copy then delete). The temporary
object matters on GCS: closing a ``GFile`` finalizes the upload even when the caller raised midway,
so writing the final name directly could publish half a file. TensorFlow is imported only for URLs.

A killed process (SIGKILL, power loss) can still leave a temporary file behind; its name contains
:data:`TMP_MARK` so that cleanups (``data_prep`` removes stale shards) can recognise it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from collections.abc import Iterator
from typing import IO, Any

TMP_MARK = ".tmp-"  # in every temporary name this module creates; see is_temporary


def is_remote(path: str) -> bool:
    """True for URLs (``gs://...``), written through ``tf.io.gfile``; False for local paths."""
    return "://" in str(path)


def temporary_path(path: str) -> str:
    """The temporary name a write to ``path`` uses: same folder, unique per process and thread."""
    return f"{path}{TMP_MARK}{os.getpid()}-{threading.get_ident()}"


def is_temporary(name: str) -> bool:
    """True when a file name is a temporary file left by an interrupted write."""
    return TMP_MARK in os.path.basename(str(name))


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def _make_parent(path: str) -> None:
    if is_remote(path):
        parent = path.rsplit("/", 1)[0]
        if parent and not parent.endswith(":/"):
            _gfile().makedirs(parent)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def _remove_quietly(path: str) -> None:
    try:
        if is_remote(path):
            if _gfile().exists(path):
                _gfile().remove(path)
        elif os.path.lexists(path):
            os.remove(path)
    except OSError:
        pass  # the original error is the one worth reporting


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path to write ``path`` through; renames it into place on success.

    For writers that want a file name rather than a stream (pyarrow's ParquetWriter, PIL's
    ``Image.save``, ``tf.io.TFRecordWriter``). The parent folder is created. On any exception inside
    the ``with`` block the temporary file is removed and the exception propagates; ``path`` keeps
    whatever it held before (nothing, or the previous complete version).
    """
    path = str(path)
    _make_parent(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        if is_remote(path):
            _gfile().rename(tmp, path, overwrite=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", encoding: str | None = "utf-8", newline: str | None = None) -> Iterator[IO]:
    """Opens ``path`` for writing (``mode`` "w" or "wb") through a temporary file; see atomic_path.

    Text mode uses ``encoding`` (UTF-8) and ``newline`` as :func:`open` does; binary mode ignores both.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open({path!r}): mode must be 'w' or 'wb', got {mode!r}")
    with atomic_path(path) as tmp:
        if is_remote(path):
            with _gfile().GFile(tmp, mode) as f:
                yield f
        elif mode == "wb":
            with open(tmp, mode) as f:
                yield f
        else:
            with open(tmp, mode, encoding=encoding, newline=newline) as f:
                yield f


def write_bytes(path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (local path or URL); creates the parent folder."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    """Writes ``text`` as UTF-8 to ``path`` atomically, line ends exactly as given."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, obj: Any, *, indent: int | None = 1, sort_keys: bool = False, default=None) -> None:
    """Writes ``obj`` as JSON (``json.dumps`` with these options) plus a final newline, atomically."""
    write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(folder: str, *, prefix: str = "", temp_dirs: bool = False) -> list[str]:
    """Removes what killed runs left in a local ``folder``; returns the removed paths.

    Removed: entries named ``{prefix}...{TMP_MARK}{pid}...`` (files, or folders such as an export's
    ``EXPORT.tmp-PID/``) whose process is gone (a live writer's temporary is left alone), and with
    ``temp_dirs`` TensorFlow's checkpoint staging folders ``*_temp/`` (``ckpt-N_temp/``; call it
    only where one trainer writes). URLs are left alone (no process ids to check there).
    """
    import shutil

    if is_remote(folder) or not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        stale = False
        if name.startswith(prefix) and TMP_MARK in name:
            pid = name.rsplit(TMP_MARK, 1)[1].split("-", 1)[0]
            stale = not (pid.isdigit() and _pid_alive(int(pid)))
        elif temp_dirs and name.endswith("_temp") and os.path.isdir(path):
            stale = True
        if stale:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                _remove_quietly(path)
            removed.append(path)
    return removed


def write_figure(path: str, figure: Any, **savefig_kwargs: Any) -> None:
    """Saves a matplotlib ``figure`` to ``path`` atomically (``figure.savefig`` into memory, then
    :func:`write_bytes`); the format is the path's extension unless ``format`` is given."""
    savefig_kwargs.setdefault("format", os.path.splitext(str(path))[1].lstrip(".").lower() or "png")
    data = io.BytesIO()
    figure.savefig(data, **savefig_kwargs)
    write_bytes(path, data.getvalue())
