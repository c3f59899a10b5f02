"""Importing TensorFlow without its C++ start-up log lines (for the CLI and its worker processes).

``TF_CPP_MIN_LOG_LEVEL=2`` silences TensorFlow's INFO/WARNING logging, but a few lines (oneDNN, CPU
features, "All log messages before absl::InitializeLog()") are written to file descriptor 2 while the
shared libraries load, before that setting is read. :func:`import_tensorflow_quietly` sends fd 2 to
/dev/null for the import only; errors raised by the import still propagate (as Python exceptions).
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_fd_silenced():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Imports tensorflow (a no-op when already imported) with fd 2 silenced during the import, and
    sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the user set it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    with _stderr_fd_silenced():
        import tensorflow  # noqa: F401
