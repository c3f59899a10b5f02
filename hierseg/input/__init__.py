"""The tf.data input pipeline: TFRecord shards -> fixed-shape training/eval batches.

Modules: :mod:`preprocess` (decode, normalize, resize and pad: shared with export and prediction),
:mod:`example_decoder` (tf.Example -> tensors), :mod:`transforms` (flip, scale jitter, mask crops),
:mod:`anchor_targets` (RPN labels), :mod:`pipeline` (``build_dataset``).
"""
