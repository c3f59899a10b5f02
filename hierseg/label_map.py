"""Label maps: class ids 1..K of one layer <-> Open Images MIDs and display names.

Written as the TF Object Detection API's ``label_map.pbtxt`` (``item { id: 1 name: "/m/01g317"
display_name: "Person" }``), which existing tools read; ``name`` is the MID.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

_ITEM = re.compile(r"item\s*\{(.*?)\}", re.S)
_FIELD = re.compile(r'(\w+)\s*:\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+))')


@dataclass(frozen=True)
class LabelMap:
    """Ordered classes of one layer: ``mids[i]`` has id ``i + 1``; 0 is background."""

    mids: tuple[str, ...]
    names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.mids) != len(self.names):
            raise ValueError("label map: mids and names differ in length")
        if len(set(self.mids)) != len(self.mids):
            raise ValueError("label map: duplicate MIDs")

    @property
    def num_classes(self) -> int:
        return len(self.mids)

    def id_of(self, mid: str) -> int:
        try:
            return self.mids.index(mid) + 1
        except ValueError:
            raise KeyError(f"{mid} is not in the label map") from None

    def mid_of(self, class_id: int) -> str:
        if not 1 <= class_id <= len(self.mids):
            raise KeyError(f"class id {class_id} outside 1..{len(self.mids)}")
        return self.mids[class_id - 1]

    @classmethod
    def from_classes(cls, mids: Sequence[str], names: Sequence[str] | dict) -> LabelMap:
        if isinstance(names, dict):
            names = [names[m] for m in mids]
        return cls(tuple(mids), tuple(names))

    def to_pbtxt(self) -> str:
        def q(s: str) -> str:
            return s.replace("\\", "\\\\").replace('"', '\\"')

        return "".join(
            f'item {{\n  id: {i + 1}\n  name: "{q(m)}"\n  display_name: "{q(n)}"\n}}\n'
            for i, (m, n) in enumerate(zip(self.mids, self.names))
        )

    @classmethod
    def from_pbtxt(cls, text: str, source: str = "<label map>") -> LabelMap:
        items: dict[int, tuple[str, str]] = {}
        for k, block in enumerate(_ITEM.findall(text)):
            fields = {f: (s if s is not None and s != "" or not n else n) for f, s, n in _FIELD.findall(block)}
            if "id" not in fields or "name" not in fields:
                raise ValueError(f"{source}: item {k + 1} lacks id or name")
            cid = int(fields["id"])
            if cid in items:
                raise ValueError(f"{source}: duplicate id {cid}")
            name = bytes(fields["name"], "utf-8").decode("unicode_escape")
            disp = bytes(fields.get("display_name", name), "utf-8").decode("unicode_escape")
            items[cid] = (name, disp)
        if sorted(items) != list(range(1, len(items) + 1)):
            raise ValueError(f"{source}: ids must be 1..K without gaps, got {sorted(items)[:10]}...")
        return cls(tuple(items[i][0] for i in sorted(items)), tuple(items[i][1] for i in sorted(items)))

    def save(self, path: str) -> None:
        from hierseg import atomic_write

        atomic_write.write_text(path, self.to_pbtxt())

    @classmethod
    def load(cls, path: str) -> LabelMap:
        from hierseg.oid.layout import read_text  # the one text reader (a byte-order mark dropped)

        return cls.from_pbtxt(read_text(path), source=path)
