"""The hierarchy file formats: the nested hierarchy JSON and the class-description CSV.

Reading and parsing only; :class:`hierseg.hierarchy.Hierarchy` is built from what this returns (use
:meth:`Hierarchy.from_files` / :meth:`Hierarchy.from_tree`, which also re-export these names).

The hierarchy JSON is a nested tree of ``{"LabelName": MID, "Subcategory": [...], "Part": [...]}``
whose root (:data:`ROOT_MID`, "Entity") is virtual: it is not a class. The class-description CSV has
no header and one ``MID,Name`` row per class. Every error names the file and the line or key path.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass

from hierseg.errors import UsageError

ROOT_MID = "/m/0bl9f"


class HierarchyError(UsageError):
    """A hierarchy or class-description file that cannot be used, with the file and key named (exit 2)."""


def _read_text(path: str) -> str:
    # The one text reader (local or gs://, a byte-order mark dropped), as for the annotation CSVs.
    from hierseg.oid.layout import read_text

    try:
        return read_text(path)
    except FileNotFoundError:
        raise HierarchyError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise HierarchyError(f"{path}: not UTF-8 text (byte {e.start})") from None


def read_class_descriptions(path: str) -> dict[str, str]:
    """Reads a class-description CSV (no header, ``MID,Name``) into an ordered {MID: name} dict.

    Raises:
      HierarchyError: naming the file and line of a malformed row or a duplicate MID.
    """
    names: dict[str, str] = {}
    for lineno, row in enumerate(csv.reader(io.StringIO(_read_text(path))), start=1):
        if not row:
            continue
        if len(row) != 2 or not row[0].startswith("/m/") and not row[0].startswith("/g/"):
            raise HierarchyError(f"{path}:{lineno}: expected 'MID,Name', got {row!r}")
        mid, name = row[0].strip(), row[1].strip()
        if mid in names:
            raise HierarchyError(f"{path}:{lineno}: duplicate MID {mid}")
        names[mid] = name
    if not names:
        raise HierarchyError(f"{path}: no classes")
    return names


def read_hierarchy_json(path: str) -> Mapping:
    """The parsed hierarchy JSON tree of ``path`` (local or gs://)."""
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise HierarchyError(f"{path}: not valid JSON: {e}") from e


@dataclass(frozen=True)
class ParsedTree:
    """What a hierarchy JSON tree defines, as :class:`hierseg.hierarchy.Hierarchy`'s constructor takes it."""

    classes: tuple[str, ...]  # every MID, root excluded, in first-appearance pre-order
    names: dict[str, str]  # MID -> display name (the MID itself when no names were given)
    parent_edges: dict[str, tuple[str, ...]]  # child MID -> Subcategory parents (root excluded)
    part_edges: tuple[tuple[str, str], ...]  # (whole MID, part MID) per Part entry


def parse_tree(tree: Mapping, names: Mapping[str, str] | None = None, *, source: str = "<hierarchy>") -> ParsedTree:
    """Walks the parsed JSON tree depth-first (pre-order) and collects classes, parents and parts.

    Args:
      tree: the root dict (``LabelName`` must be :data:`ROOT_MID`).
      names: MID -> display name; when given, every MID of the tree must have one.
      source: what to name in errors (the file path).
    Raises:
      HierarchyError: naming ``source`` and the key path of a malformed node.
    """
    order: list[str] = []
    seen: set[str] = set()
    parents: dict[str, list[str]] = {}
    parts: list[tuple[str, str]] = []

    def visit(node: Mapping, parent: str | None, keypath: str) -> None:
        if not isinstance(node, Mapping) or "LabelName" not in node:
            raise HierarchyError(f"{source}: node at {keypath} has no 'LabelName'")
        mid = node["LabelName"]
        unknown = set(node) - {"LabelName", "Subcategory", "Part"}
        if unknown:
            raise HierarchyError(f"{source}: node {mid} at {keypath} has unknown keys {sorted(unknown)}")
        if parent is not None:
            if mid not in seen:
                seen.add(mid)
                order.append(mid)
            plist = parents.setdefault(mid, [])
            if parent != ROOT_MID and parent not in plist:
                plist.append(parent)
        for i, sub in enumerate(node.get("Subcategory", [])):
            visit(sub, mid, f"{keypath}.Subcategory[{i}]")
        for part in node.get("Part", []):
            if not isinstance(part, Mapping) or "LabelName" not in part:
                raise HierarchyError(f"{source}: a Part of {mid} has no 'LabelName'")
            parts.append((mid, part["LabelName"]))

    if tree.get("LabelName") != ROOT_MID:
        raise HierarchyError(f"{source}: root LabelName must be {ROOT_MID}, got {tree.get('LabelName')!r}")
    visit(tree, None, "root")
    # Parts that never appear as a Subcategory are still classes (the 600-class file's body parts
    # are all Subcategories elsewhere too, but be safe).
    for _, part in parts:
        if part not in seen:
            seen.add(part)
            order.append(part)
            parents.setdefault(part, [])
    names = dict(names or {})
    if names:
        missing = [m for m in order if m not in names]
        if missing:
            raise HierarchyError(f"{source}: {len(missing)} MIDs have no class description, e.g. {missing[:3]}")
    return ParsedTree(
        classes=tuple(order),
        names={m: names.get(m, m) for m in order},
        parent_edges={m: tuple(p) for m, p in parents.items()},
        part_edges=tuple(parts),
    )
