"""TensorBoard scalar summaries without importing tensorboard (tensorflow-cpu does not ship it).

``tf.summary.scalar`` lives in the tensorboard package; this writes the same event records through
the core ``tf.summary.write`` op with the "scalars" plugin metadata, so TensorBoard shows them as usual.
"""

from __future__ import annotations

from collections.abc import Mapping

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
).SerializeToString()


def write_scalars(logdir_or_writer: str | tf.summary.SummaryWriter, step: int, scalars: Mapping[str, float]) -> None:
    """Writes each finite number of ``scalars`` as a TensorBoard scalar at ``step`` and flushes."""
    writer = tf.summary.create_file_writer(logdir_or_writer) if isinstance(logdir_or_writer, str) else logdir_or_writer
    with writer.as_default():
        for tag, value in scalars.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tf.summary.write(tag, tf.constant(float(value), tf.float32), step=int(step), metadata=_SCALAR_METADATA)
    writer.flush()
    if isinstance(logdir_or_writer, str):
        writer.close()


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
    """Reads back the scalars of every event file in ``logdir``: tag -> [(step, value)] (for tests/tools)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(tf.io.gfile.glob(f"{logdir}/events.out.tfevents.*")):
        for raw in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            for v in event.summary.value:
                if v.HasField("tensor"):
                    out.setdefault(v.tag, []).append((event.step, float(tf.make_ndarray(v.tensor))))
    return out
