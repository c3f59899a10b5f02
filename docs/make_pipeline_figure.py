"""Draws docs/pipeline.png, the README's picture of the pipeline: python docs/make_pipeline_figure.py"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

BOXES = {
    "oid": (0.02, 0.40, "Open Images files\nhierarchy, CSVs,\nmask zips, JPEGs", "#dddddd"),
    "prep": (0.22, 0.40, "hierseg prepare\nlayer assignment,\nbalancing, gray fill", "#cfe2f3"),
    "l0": (0.44, 0.66, "Layer0 TFRecords\n213 depth-0 classes\nMan → Person", "#d9ead3"),
    "l1": (0.44, 0.14, "Layer1 TFRecords\n87 depth-1/2 classes\nPerson boxes grayed", "#fff2cc"),
    "m0": (0.64, 0.66, "Mask R-CNN\nLayer0 model", "#d9ead3"),
    "m1": (0.64, 0.14, "Mask R-CNN\nLayer1 model", "#fff2cc"),
    "ens": (0.82, 0.40, "ensemble by mask IoU\n(Person, Man)\n(Toy, Teddy bear)\n→ submission", "#f4cccc"),
}
EDGES = [("oid", "prep"), ("prep", "l0"), ("prep", "l1"), ("l0", "m0"), ("l1", "m1"), ("m0", "ens"), ("m1", "ens")]
W, H = 0.16, 0.22

fig, ax = plt.subplots(figsize=(11, 3.6), dpi=110)
ax.set_axis_off()
for x, y, text, colour in BOXES.values():
    ax.add_patch(FancyBboxPatch((x, y), W, H, boxstyle="round,pad=0.01", fc=colour, ec="#555555"))
    ax.text(x + W / 2, y + H / 2, text, ha="center", va="center", fontsize=8.5)
for a, b in EDGES:
    (xa, ya, *_), (xb, yb, *_) = BOXES[a], BOXES[b]
    ax.add_patch(FancyArrowPatch((xa + W, ya + H / 2), (xb, yb + H / 2), arrowstyle="-|>", mutation_scale=12))
ax.set_xlim(0, 1)
ax.set_ylim(0.08, 0.94)
fig.tight_layout()
fig.savefig("docs/pipeline.png")
