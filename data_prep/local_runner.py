"""Runs the pixel stage on local cores: worker processes build Examples, the main process writes shards.

Images are processed in shard order by ``Pool.imap`` (ordered), so the main process can stream each
shard's records into its writer and publish the shard as soon as its last image arrives. Workers are
*spawned* (not forked): the parent has TensorFlow loaded, and forking a process with TF's thread pools
running is unsafe. With ``num_workers <= 1`` everything runs in the calling process.

Ctrl-C: workers ignore SIGINT (a terminal sends it to the whole process group). Only the main process
stops, aborts the shard being written (complete shards stay), and terminates the workers. A worker
killed by SIGINT could die holding the task queue's lock, and ``Pool.terminate()`` then waits for that
lock forever.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from data_prep.pixels import ImageResult, ImageTask, PixelProcessor
from data_prep.shards import ShardWriter

_PROC: PixelProcessor | None = None


@dataclass
class ShardJob:
    """One shard to write: its folder and file name, how many images, and a factory of its tasks
    (in write order; a factory so that tasks are built lazily, shard by shard)."""

    layer_dir: str
    name: str
    num_tasks: int
    tasks: Callable[[], Iterator[ImageTask]]


def _init_worker(proc: PixelProcessor) -> None:
    global _PROC
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C (see the module docstring)
    _PROC = proc


def _start_pool(num_workers: int, processor: PixelProcessor):
    """A spawn pool whose workers ignore SIGINT from their first instruction: an ignored signal stays
    ignored across exec, and Python installs its KeyboardInterrupt handler only over the default one."""
    ctx = mp.get_context("spawn")
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        return ctx.Pool(num_workers, initializer=_init_worker, initargs=(processor,))
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return ctx.Pool(num_workers, initializer=_init_worker, initargs=(processor,))
    finally:
        signal.signal(signal.SIGINT, previous)


def _work(task: ImageTask) -> ImageResult:
    return _PROC.process(task)


def _all_tasks(jobs: Sequence[ShardJob]) -> Iterator[ImageTask]:
    for job in jobs:
        yield from job.tasks()


def run_local(
    jobs: Sequence[ShardJob], processor: PixelProcessor, *, num_workers: int | None = None, show_progress: bool = True
) -> list[dict]:
    """Writes every job's shard; returns the shards' stats in job order.

    Args:
      num_workers: worker processes (None = all cores; <= 1 = in this process).
      show_progress: a tqdm bar with images done and images/s.
    """
    from tqdm import tqdm

    num_workers = mp.cpu_count() if num_workers is None else num_workers
    total = sum(j.num_tasks for j in jobs)
    bar = tqdm(total=total, unit="img", desc="prepare", disable=not show_progress, smoothing=0.05)
    stats: list[dict] = []
    pool = None
    if num_workers > 1 and total > 1:
        pool = _start_pool(num_workers, processor)
        results = pool.imap(_work, _all_tasks(jobs), chunksize=4)
    else:
        results = (processor.process(t) for t in _all_tasks(jobs))
    try:
        for job in jobs:
            writer = ShardWriter(job.layer_dir, job.name)
            try:
                for _ in range(job.num_tasks):
                    writer.add(next(results))
                    bar.update(1)
            except BaseException:
                writer.abort()
                raise
            stats.append(writer.commit())
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    return stats
