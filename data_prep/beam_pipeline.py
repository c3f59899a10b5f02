"""Runs the pixel stage as an Apache Beam pipeline (DirectRunner here, DataflowRunner in the cloud).

One element per shard: a worker builds the shard's Examples with the same
:func:`data_prep.pixels.process_image` as the local runner, in the same order, and publishes the shard
atomically with the same :class:`data_prep.shards.ShardWriter`, so both runners write identical
bytes. Shards are independent, so Beam may run them in any order or retry them.

DataflowRunner: pass the usual options through ``beam_options`` (``--project``, ``--region``,
``--temp_location gs://...``, ``--requirements_file`` or ``--setup_file`` so workers can import
hierseg), and use gs:// paths for the dataset and the output.
"""

from __future__ import annotations

from collections.abc import Sequence

from data_prep.local_runner import ShardJob
from data_prep.pixels import ImageTask, PixelProcessor
from data_prep.shards import write_shard


class _WriteShard:
    """Beam DoFn body (a plain callable for ``beam.Map``): (layer_dir, name, tasks) -> stats."""

    def __init__(self, processor: PixelProcessor):
        self.processor = processor

    def __call__(self, element: tuple[str, str, list[ImageTask]]) -> dict:
        layer_dir, name, tasks = element
        return write_shard(layer_dir, name, (self.processor.process(t) for t in tasks))


def run_beam(
    jobs: Sequence[ShardJob],
    processor: PixelProcessor,
    *,
    runner: str = "DirectRunner",
    beam_options: Sequence[str] | None = None,
) -> None:
    """Writes every job's shard with Beam; stats land in each shard's stats file (see shards.py).

    Tasks are materialized into the pipeline (one list per shard).
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(beam_options or [])
    if not any(a.startswith("--runner") for a in args):
        args.append(f"--runner={runner}")
    if runner == "DirectRunner" and not any(a.startswith("--direct_num_workers") for a in args):
        args.append("--direct_num_workers=1")
    elements = [(j.layer_dir, j.name, list(j.tasks())) for j in jobs]
    if not elements:
        return
    options = PipelineOptions(args)
    with beam.Pipeline(options=options) as p:
        (
            p
            | "Shards" >> beam.Create(elements, reshuffle=False)
            | "Reshuffle" >> beam.Reshuffle()
            | "WriteShard" >> beam.Map(_WriteShard(processor))
        )
