"""A multiprocessing pool that is safe next to TensorFlow: the one place the ensembles package starts processes."""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Iterator
from typing import Any


def start_method() -> str:
    """ "fork" when TensorFlow is not loaded in this process (cheap: workers share the parent's memory,
    e.g. the ground truth), else "spawn" (fork after TensorFlow started its threads can deadlock)."""
    if "tensorflow" not in sys.modules and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


@contextlib.contextmanager
def process_pool(num_workers: int, initializer=None, initargs: tuple = ()) -> Iterator[Any]:
    """A ``multiprocessing.Pool`` of ``num_workers`` processes (:func:`start_method`), terminated on exit."""
    pool = multiprocessing.get_context(start_method()).Pool(num_workers, initializer, initargs)
    try:
        yield pool
    finally:
        pool.terminate()
        pool.join()
