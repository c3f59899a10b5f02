"""The folders hierseg writes and reads back: a prepared layer, a model dir, an export dir.

Every file name of these folders is written here once; writers and readers ask these types for paths
(the Open Images download's own layout is :mod:`hierseg.oid.layout`). Paths may be local or ``gs://``
URLs; they are joined with ``/`` so both work.

``hierseg prepare OUT`` writes one :class:`PreparedLayer` per layer of the hierarchy, ``OUT/layer{i}/``::

  {train,validation}-NNNNN-of-MMMMM.tfrecord   tf.train.Example shards (keys in hierseg.features)
  label_map.pbtxt                              class ids 1..K -> MIDs
  validation_coco.json                         COCO ground truth of the validation shards (RLE masks)
  manifest.parquet                             one row per kept instance per written copy
  balance_{split}.csv, balance_{split}.png     per-class counts before/after balancing
  prepare.json                                 config, input files, counts, skips per reason
  .prepare_state/<shard>.json                  per-shard stats (a shard is complete once it exists)
  .prepare_state/fingerprint.json              inputs and config of the run that wrote it (checked on rerun)

``hierseg train --model_dir D`` writes a :class:`ModelDir`; ``hierseg export`` an :class:`ExportDir`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hierseg.fingerprint import FINGERPRINT_FILE
from hierseg.oid.layout import join

SPLITS: tuple[str, ...] = ("train", "validation")  # the prepared splits

# PreparedLayer file names.
LAYER_DIR_NAME = "layer{layer}"
SHARD_NAME = "{split}-{index:05d}-of-{num_shards:05d}.tfrecord"
SHARD_GLOB = "{split}-*.tfrecord"
LABEL_MAP_NAME = "label_map.pbtxt"
VALIDATION_COCO_NAME = "validation_coco.json"
MANIFEST_NAME = "manifest.parquet"
BALANCE_CSV_NAME = "balance_{split}.csv"
BALANCE_PNG_NAME = "balance_{split}.png"
PREPARE_JSON_NAME = "prepare.json"
STATE_DIR_NAME = ".prepare_state"

# ModelDir file names.
PARAMS_NAME = "params.yaml"  # the effective experiment config, written by `hierseg train`
CHECKPOINT_PREFIX = "ckpt"  # checkpoints: ckpt-<step>.index, ckpt-<step>.data-*
TRAIN_SUMMARY_DIR_NAME = "train"
EVAL_DIR_NAME = "eval"  # eval summaries and eval/metrics-<step>.json
EVAL_METRICS_NAME = "metrics-{step}.json"
EVAL_PREDICTIONS_NAME = "predictions-{step}.jsonl"  # with eval.write_predictions

# ExportDir file names.
SAVED_MODEL_NAME = "saved_model.pb"
EXPORT_LABEL_MAP_NAME = LABEL_MAP_NAME
EXPORT_CONFIG_NAME = "export_config.yaml"  # the experiment config the model was exported with


def shard_name(split: str, index: int, num_shards: int) -> str:
    """``{split}-{index:05d}-of-{num_shards:05d}.tfrecord``, index in [0, num_shards)."""
    return SHARD_NAME.format(split=split, index=index, num_shards=num_shards)


@dataclass(frozen=True)
class PreparedLayer:
    """One prepared layer folder (``hierseg prepare``'s ``OUT/layer{i}``; ``--data_dir`` of train)."""

    root: str

    def __post_init__(self):
        object.__setattr__(self, "root", str(self.root))  # pathlib.Path accepted

    @classmethod
    def of(cls, out_dir: str, layer: int) -> PreparedLayer:
        """Layer ``layer`` of a ``hierseg prepare`` output folder."""
        return cls(join(str(out_dir), LAYER_DIR_NAME.format(layer=layer)))

    def shard(self, split: str, index: int, num_shards: int) -> str:
        return join(self.root, shard_name(split, index, num_shards))

    def shard_pattern(self, split: str) -> str:
        """A glob matching every shard of ``split`` (``tf.io.gfile.glob``/``file_pattern`` syntax)."""
        return join(self.root, SHARD_GLOB.format(split=split))

    @property
    def label_map(self) -> str:
        return join(self.root, LABEL_MAP_NAME)

    @property
    def validation_coco_json(self) -> str:
        return join(self.root, VALIDATION_COCO_NAME)

    @property
    def manifest_parquet(self) -> str:
        return join(self.root, MANIFEST_NAME)

    def balance_csv(self, split: str) -> str:
        return join(self.root, BALANCE_CSV_NAME.format(split=split))

    def balance_png(self, split: str) -> str:
        return join(self.root, BALANCE_PNG_NAME.format(split=split))

    @property
    def prepare_json(self) -> str:
        return join(self.root, PREPARE_JSON_NAME)

    @property
    def state_dir(self) -> str:
        return join(self.root, STATE_DIR_NAME)

    @property
    def fingerprint_json(self) -> str:
        """The inputs and config of the run that wrote this layer (hierseg.fingerprint), checked on rerun."""
        return join(self.state_dir, FINGERPRINT_FILE)

    def shard_stats_json(self, shard: str) -> str:
        """Stats of shard file name ``shard``; written last, so its presence marks the shard complete."""
        return join(self.state_dir, f"{shard}.json")


@dataclass(frozen=True)
class ModelDir:
    """A training run's folder (``--model_dir``): effective config, checkpoints, summaries, eval metrics."""

    root: str

    def __post_init__(self):
        object.__setattr__(self, "root", str(self.root))  # pathlib.Path accepted

    @property
    def params_yaml(self) -> str:
        return join(self.root, PARAMS_NAME)

    def checkpoint(self, step: int) -> str:
        """The checkpoint prefix of ``step`` (``ckpt-<step>``; TensorFlow adds .index/.data-*)."""
        return join(self.root, f"{CHECKPOINT_PREFIX}-{step}")

    @property
    def train_summaries(self) -> str:
        return join(self.root, TRAIN_SUMMARY_DIR_NAME)

    @property
    def eval_dir(self) -> str:
        return join(self.root, EVAL_DIR_NAME)

    def eval_metrics_json(self, step: int | str) -> str:
        return join(self.eval_dir, EVAL_METRICS_NAME.format(step=step))

    def eval_predictions_jsonl(self, step: int | str) -> str:
        return join(self.eval_dir, EVAL_PREDICTIONS_NAME.format(step=step))


@dataclass(frozen=True)
class ExportDir:
    """An exported layer (``hierseg export``): SavedModel, its label map and its experiment config."""

    root: str

    def __post_init__(self):
        object.__setattr__(self, "root", str(self.root))  # pathlib.Path accepted

    @property
    def saved_model_pb(self) -> str:
        return join(self.root, SAVED_MODEL_NAME)

    @property
    def label_map(self) -> str:
        return join(self.root, EXPORT_LABEL_MAP_NAME)

    @property
    def config_yaml(self) -> str:
        return join(self.root, EXPORT_CONFIG_NAME)

    def required_files(self) -> tuple[str, ...]:
        """The files whose presence makes a folder an export directory."""
        return (self.label_map, self.config_yaml, self.saved_model_pb)
