"""How a hierarchy is cut into layers: shared by data_prep, ensembles and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class HierarchyConfig:
    # Depth groups, one per layer: a class goes to the group holding its deepest depth.
    # Default: Layer0 = depth 0, Layer1 = depths 1 and 2.
    depth_groups: list[list[int]] = field(default_factory=lambda: [[0], [1, 2]])
    # MID -> MID of the ancestor to map it to when several layer ancestors exist; by default the
    # nearest one (fewest edges), ties to the first in the JSON. Teddy bear -> Toy needs no override.
    ancestor_overrides: dict[str, str] = field(default_factory=dict)
