"""Named stages run once: the demo's resumable steps.

:class:`Stages` keeps each stage's result in ``OUT/stages/<stage>.json`` (written atomically when the
stage ends); running again with the same ``OUT`` skips the stages already done and reuses their
results, so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

from hierseg import atomic_write

STAGES_DIR = "stages"


class Stages:
    """Runs named stages once: a stage whose result file exists is skipped and its result reused."""

    def __init__(self, out_dir: str, log: Callable[[str], None] = print) -> None:
        self.dir = os.path.join(out_dir, STAGES_DIR)
        os.makedirs(self.dir, exist_ok=True)
        self.log = log
        self.results: dict[str, dict] = {}

    def run(self, name: str, fn: Callable[[], dict]) -> dict:
        """``fn()``'s JSON-able result, or the one an earlier run recorded for ``name`` (fn not called)."""
        path = os.path.join(self.dir, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                rec = json.load(f)
            rec["skipped"] = True
            self.log(f"[demo] {name}: done by an earlier run ({rec['seconds']:.1f} s then), skipped")
        else:
            self.log(f"[demo] {name} ...")
            start = time.perf_counter()
            result = fn()
            rec = {"seconds": round(time.perf_counter() - start, 2), "result": result}
            atomic_write.write_json(path, rec, indent=1, default=str)
            rec["skipped"] = False
            self.log(f"[demo] {name}: {rec['seconds']:.1f} s")
        self.results[name] = rec
        return rec["result"]
