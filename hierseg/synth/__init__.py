"""The built-in synthetic Open Images dataset (challenge 2019 segmentation layout and formats).

* :func:`generate_dataset`: images, masks and every annotation CSV for a small learnable class set
  covering every hierarchy case (depth-0 leaves, parents with children, a depth-2 chain, a class with
  two parents); used by the demo, the tests and the benchmarks.
* :func:`generate_annotations_only`: the training CSVs alone at full challenge scale (2.1 M masks on
  848 k images, all 300 classes with their real counts), for benchmarks of the data pipeline.
"""

from hierseg.synth.annotations_only import generate_annotations_only
from hierseg.synth.dataset import generate_dataset

__all__ = ["generate_annotations_only", "generate_dataset"]
