"""The Open Images class hierarchy: one type shared by data_prep, the engine, ensembles and the metric.

Built from the hierarchy JSON (format and readers in :mod:`hierseg.hierarchy_files`), whose root
(``/m/0bl9f``, "Entity") is virtual: it is not a class. A class may appear under several
parents (Teddy bear is under Toy and under Bear), so the structure is a DAG. Only ``Subcategory``
edges define the hierarchy (the official evaluator expands labels along them alone); ``Part`` edges
(human body parts in the 600-class file) are read and kept apart in :attr:`Hierarchy.part_edges`.

Depth: a child of the root has depth 0. A class that appears at several depths (Teddy bear at 1 and
2) has all of them in :meth:`Hierarchy.depths`; :meth:`Hierarchy.depth` is the deepest one, and layer
grouping uses that one too ("a class appearing at several depths goes to the deepest group").

Class order everywhere is the order of first appearance in a depth-first, pre-order walk of the JSON,
which is deterministic for a given file.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hierseg.hierarchy_files import (
    ROOT_MID,
    HierarchyError,
    parse_tree,
    read_class_descriptions,
    read_hierarchy_json,
)

DEFAULT_DEPTH_GROUPS: tuple[tuple[int, ...], ...] = ((0,), (1, 2))

# Re-exported: callers import the error, the root MID and the class-CSV reader from here.
__all__ = ["DEFAULT_DEPTH_GROUPS", "ROOT_MID", "Hierarchy", "HierarchyError", "read_class_descriptions"]


@dataclass(frozen=True)
class Hierarchy:
    """A class DAG over Open Images MIDs (root excluded), with names, depths and layer grouping.

    Build it with :meth:`from_files` or :meth:`from_tree`; the constructor takes precomputed edges.

    Attributes:
      classes: every MID in the hierarchy, in first-appearance pre-order.
      names: MID -> display name (MIDs without a description are named by their MID).
      parent_edges: child MID -> parent MIDs (Subcategory edges; the root is not a parent).
      part_edges: (whole MID, part MID) pairs from ``Part`` entries, kept apart.
    """

    classes: tuple[str, ...]
    names: Mapping[str, str]
    parent_edges: Mapping[str, tuple[str, ...]]
    part_edges: tuple[tuple[str, str], ...] = ()
    _children: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    _depths: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        children: dict[str, list[str]] = {c: [] for c in self.classes}
        for child in self.classes:
            for parent in self.parent_edges.get(child, ()):
                children[parent].append(child)
        self._children.update({k: tuple(v) for k, v in children.items()})
        # Depths by breadth-first walk over every path; the hierarchy is small (hundreds of nodes).
        depths: dict[str, set[int]] = {c: set() for c in self.classes}
        queue = deque((c, 0) for c in self.classes if not self.parent_edges.get(c))
        while queue:
            mid, d = queue.popleft()
            if d in depths[mid]:
                continue
            depths[mid].add(d)
            queue.extend((ch, d + 1) for ch in self._children[mid])
        self._depths.update({k: tuple(sorted(v)) for k, v in depths.items()})

    # ----------------------------------------------------------------------------------- building
    @classmethod
    def from_tree(
        cls, tree: Mapping, names: Mapping[str, str] | None = None, *, source: str = "<hierarchy>"
    ) -> Hierarchy:
        """Builds the hierarchy from the parsed JSON tree (root dict with ``LabelName``)."""
        parsed = parse_tree(tree, names, source=source)
        return cls(
            classes=parsed.classes,
            names=parsed.names,
            parent_edges=parsed.parent_edges,
            part_edges=parsed.part_edges,
        )

    @classmethod
    def from_files(cls, hierarchy_json: str, classes_csv: str | None = None) -> Hierarchy:
        """Reads the hierarchy JSON and (optionally) the class-description CSV; local or gs:// paths."""
        tree = read_hierarchy_json(hierarchy_json)
        names = read_class_descriptions(classes_csv) if classes_csv else None
        return cls.from_tree(tree, names, source=hierarchy_json)

    @classmethod
    def builtin(cls) -> Hierarchy:
        """The real 300-class challenge 2019 segmentable hierarchy shipped with the package."""
        from hierseg.resources import CLASSES_CSV, HIERARCHY_JSON

        return cls.from_files(str(HIERARCHY_JSON), str(CLASSES_CSV))

    def to_tree(self) -> dict:
        """The hierarchy as a JSON tree in the published format (Subcategory edges and Parts)."""
        parts: dict[str, list[str]] = {}
        for whole, part in self.part_edges:
            # A whole listed under several parents repeats its Parts once per appearance: emit each once per node.
            if part not in parts.setdefault(whole, []):
                parts[whole].append(part)

        def node(mid: str) -> dict:
            out: dict = {"LabelName": mid}
            if self._children[mid]:
                out["Subcategory"] = [node(c) for c in self._children[mid]]
            if mid in parts:
                out["Part"] = [{"LabelName": p} for p in parts[mid]]
            return out

        return {"LabelName": ROOT_MID, "Subcategory": [node(c) for c in self.roots()]}

    def subset(self, keep: Iterable[str]) -> Hierarchy:
        """The hierarchy restricted to ``keep`` (which must be closed under ancestors)."""
        keep = set(keep)
        for mid in keep:
            self._check(mid)
            if not self.ancestors(mid) <= keep:
                raise HierarchyError(f"subset: {mid} kept without its ancestors {sorted(self.ancestors(mid) - keep)}")
        return Hierarchy(
            classes=tuple(c for c in self.classes if c in keep),
            names={c: self.names[c] for c in self.classes if c in keep},
            parent_edges={c: self.parent_edges[c] for c in self.classes if c in keep},
            part_edges=tuple((a, b) for a, b in self.part_edges if a in keep and b in keep),
        )

    # ----------------------------------------------------------------------------------- queries
    def _check(self, mid: str) -> None:
        if mid not in self._children:
            raise KeyError(f"{mid} is not a class of this hierarchy")

    def __contains__(self, mid: object) -> bool:
        return mid in self._children

    def __len__(self) -> int:
        return len(self.classes)

    def name(self, mid: str) -> str:
        self._check(mid)
        return self.names[mid]

    def mid_of(self, name: str) -> str:
        """The MID of a display name (exact match)."""
        for mid, n in self.names.items():
            if n == name:
                return mid
        raise KeyError(f"no class named {name!r}")

    def roots(self) -> tuple[str, ...]:
        """Classes directly under the virtual root (depth 0 appears among their depths)."""
        return tuple(c for c in self.classes if not self.parent_edges.get(c))

    def parents(self, mid: str) -> tuple[str, ...]:
        self._check(mid)
        return self.parent_edges.get(mid, ())

    def children(self, mid: str) -> tuple[str, ...]:
        self._check(mid)
        return self._children[mid]

    def is_leaf(self, mid: str) -> bool:
        return not self.children(mid)

    def leaves(self) -> tuple[str, ...]:
        return tuple(c for c in self.classes if not self._children[c])

    def ancestors(self, mid: str) -> frozenset[str]:
        """All classes above ``mid`` along Subcategory edges (the union over every parent; not itself)."""
        self._check(mid)
        out: set[str] = set()
        stack = list(self.parent_edges.get(mid, ()))
        while stack:
            p = stack.pop()
            if p not in out:
                out.add(p)
                stack.extend(self.parent_edges.get(p, ()))
        return frozenset(out)

    def descendants(self, mid: str) -> frozenset[str]:
        """All classes below ``mid`` (not itself)."""
        self._check(mid)
        out: set[str] = set()
        stack = list(self._children[mid])
        while stack:
            c = stack.pop()
            if c not in out:
                out.add(c)
                stack.extend(self._children[c])
        return frozenset(out)

    def depths(self, mid: str) -> tuple[int, ...]:
        """Every depth at which ``mid`` appears, ascending (0 = child of the root)."""
        self._check(mid)
        return self._depths[mid]

    def depth(self, mid: str) -> int:
        """The deepest depth at which ``mid`` appears (Teddy bear: 2)."""
        return self.depths(mid)[-1]

    @property
    def max_depth(self) -> int:
        return max(d[-1] for d in self._depths.values())

    def multi_parent_classes(self) -> tuple[str, ...]:
        return tuple(c for c in self.classes if len(self.parent_edges.get(c, ())) > 1)

    def parent_classes(self) -> tuple[str, ...]:
        """Classes that have at least one child."""
        return tuple(c for c in self.classes if self._children[c])

    # ------------------------------------------------------------------------------ label expansion
    def expand_positive(self, mid: str) -> tuple[str, ...]:
        """A box, mask or positive image label expands to itself plus all its ancestors."""
        anc = self.ancestors(mid)
        return (mid, *(c for c in self.classes if c in anc))

    def expand_negative(self, mid: str) -> tuple[str, ...]:
        """A verified-negative image label expands to itself plus all its descendants."""
        desc = self.descendants(mid)
        return (mid, *(c for c in self.classes if c in desc))

    # ----------------------------------------------------------------------------------- distances
    def _up_distances(self, mid: str) -> dict[str, int]:
        """Fewest Subcategory edges from ``mid`` up to each ancestor (itself at 0)."""
        dist = {mid: 0}
        queue = deque([mid])
        while queue:
            m = queue.popleft()
            for p in self.parent_edges.get(m, ()):
                if p not in dist:
                    dist[p] = dist[m] + 1
                    queue.append(p)
        return dist

    def path_down(self, ancestor: str, mid: str) -> tuple[str, ...]:
        """The shortest label path from ``ancestor`` down to ``mid``, both included.

        Ties between equally short paths go to the parent listed first in the JSON.
        Example: ``path_down(Carnivore, Teddy bear) == (Carnivore, Bear, Teddy bear)``.
        """
        self._check(ancestor)
        self._check(mid)
        if ancestor == mid:
            return (mid,)
        if ancestor not in self.ancestors(mid):
            raise ValueError(f"{self.names[ancestor]} ({ancestor}) is not an ancestor of {self.names[mid]} ({mid})")
        dist = self._up_distances(mid)
        path = [ancestor]
        # Walk down from the ancestor, always to a child strictly closer to ``mid``.
        while path[-1] != mid:
            here = dist[path[-1]]
            nxt = [c for c in self._children[path[-1]] if dist.get(c) == here - 1]
            path.append(nxt[0])
        return tuple(path)

    # -------------------------------------------------------------------------------------- layers
    def layers(self, depth_groups: Sequence[Sequence[int]] = DEFAULT_DEPTH_GROUPS) -> list[tuple[str, ...]]:
        """Classes per layer: a class goes to the group containing its deepest depth.

        Raises:
          HierarchyError: if a depth of the hierarchy is in no group or in two.
        """
        where: dict[int, int] = {}
        for i, group in enumerate(depth_groups):
            for d in group:
                if d in where:
                    raise HierarchyError(f"depth {d} is in layer groups {where[d]} and {i}")
                where[d] = i
        out: list[list[str]] = [[] for _ in depth_groups]
        for c in self.classes:
            d = self.depth(c)
            if d not in where:
                raise HierarchyError(
                    f"{self.names[c]} ({c}) has depth {d}, in no group of {list(map(list, depth_groups))}: "
                    f"give depth groups covering depths 0..{self.max_depth} (--depth_groups or hierarchy.depth_groups)"
                )
            out[where[d]].append(c)
        return [tuple(x) for x in out]

    def check_layer_order(self, layer_classes: Sequence[Sequence[str]], sources: Sequence[str]) -> None:
        """Checks models given for layers 0, 1, ... against the hierarchy: every class is known, and no
        class of a later layer is an ancestor of a class of an earlier one (exports given in swapped order).

        Args:
          layer_classes: the MIDs each layer's model predicts, in layer order.
          sources: what to name for each layer in messages (``"--layer0 exports/l0"``).
        Raises:
          HierarchyError: naming the source, the class and what is wrong.
        """
        for classes, source in zip(layer_classes, sources):
            unknown = [m for m in classes if m not in self._children]
            if unknown:
                raise HierarchyError(
                    f"{source}: {len(unknown)} class(es) not in the hierarchy (first: {unknown[0]}): "
                    "an export of another class set?"
                )
        for i, (early, early_src) in enumerate(zip(layer_classes, sources)):
            for late, late_src in zip(layer_classes[i + 1 :], sources[i + 1 :]):
                late_set = set(late)
                for m in early:
                    above = sorted(self.ancestors(m) & late_set)
                    if above:
                        raise HierarchyError(
                            f"{late_src} predicts {self.names[above[0]]} ({above[0]}), a parent of "
                            f"{self.names[m]} ({m}) of {early_src}: the exports are given in swapped order?"
                        )

    def layer_of(self, mid: str, depth_groups: Sequence[Sequence[int]] = DEFAULT_DEPTH_GROUPS) -> int:
        for i, layer in enumerate(self.layers(depth_groups)):
            if mid in layer:
                return i
        raise KeyError(mid)

    def ancestor_in(self, mid: str, targets: Iterable[str], overrides: Mapping[str, str] | None = None) -> str | None:
        """The class among ``targets`` that ``mid`` maps to: itself if it is a target, else its nearest
        target ancestor, or None when it has none.

        Nearest = fewest Subcategory edges (Teddy bear -> Toy, one edge, not Carnivore, two). Ties are
        broken by class order (first appearance in the JSON), a deterministic rule; ``overrides`` maps a
        MID to the target to use instead (it must be a target ancestor), from config.
        """
        targets = set(targets)
        if overrides and mid in overrides and mid not in targets:
            chosen = overrides[mid]
            if chosen not in targets or chosen not in self.ancestors(mid):
                raise HierarchyError(f"override {mid} -> {chosen}: not a target ancestor of {mid}")
            return chosen
        dist = self._up_distances(mid)
        candidates = [c for c in dist if c in targets]
        if not candidates:
            return None
        rank = {c: i for i, c in enumerate(self.classes)}
        return min(candidates, key=lambda c: (dist[c], rank[c]))

    def layer_table(self, depth_groups: Sequence[Sequence[int]] = DEFAULT_DEPTH_GROUPS) -> dict:
        """A JSON-able summary: classes per layer with names, parents and depths, and totals."""
        layers = self.layers(depth_groups)
        return {
            "num_classes": len(self.classes),
            "max_depth": self.max_depth,
            "num_parents": len(self.parent_classes()),
            "multi_parent_classes": [
                {"mid": c, "name": self.names[c], "parents": [self.names[p] for p in self.parent_edges[c]]}
                for c in self.multi_parent_classes()
            ],
            "depth_groups": [list(g) for g in depth_groups],
            "layers": [
                {
                    "layer": i,
                    "depths": list(depth_groups[i]),
                    "num_classes": len(layer),
                    "classes": [
                        {
                            "id": j + 1,
                            "mid": c,
                            "name": self.names[c],
                            "depths": list(self.depths(c)),
                            "parents": [self.names[p] for p in self.parents(c)],
                            "num_children": len(self.children(c)),
                        }
                        for j, c in enumerate(layer)
                    ],
                }
                for i, layer in enumerate(layers)
            ],
        }
