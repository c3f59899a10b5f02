"""The part files of a `hierseg predict` run: a record per finished image, and an index to read them back.

A part file ``OUT/parts/part-<hash>.jsonl`` holds one line per image (:func:`record_line`), written
atomically once a chunk of images is done (:mod:`hierseg_cli.workflows.predict_folder`), so a killed
run loses at most the chunk in flight and a rerun predicts only the images no part holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence

from hierseg.detections import Detections

LAYER_KEYS = ("layer0", "layer1", "merged")  # the three detections of a part record, in order
FINAL_JSONL = {"merged": "predictions.jsonl", "layer0": "layer0.jsonl", "layer1": "layer1.jsonl"}


def part_name(first_path: str) -> str:
    """The file name of a new part whose first image is ``first_path``."""
    # Named after the first image it holds: that image was pending, so no existing part holds it,
    # so the name is new, whatever subset of images this run works on.
    return f"part-{hashlib.sha1(first_path.encode('utf-8')).hexdigest()[:16]}.jsonl"


def record_line(path: str, image_id: str, error: str | None = None, layers: Sequence[Detections] = ()) -> str:
    """One part record: a small JSON header ``{"image_id", "path"[, "error"]}``, then for a readable
    image a tab and each of LAYER_KEYS' detections as its JSON line (prediction_file's encoding),
    tab-separated. JSON text never holds a raw tab, so the fields split unambiguously; the header is
    read without decoding any mask, and each detections line is copied to the final files as is."""
    header: dict = {"image_id": image_id, "path": path}
    if error is not None:
        header["error"] = error
    return "\t".join([json.dumps(header), *(det.to_json() for det in layers)])


class PartIndex:
    """Where each finished image's record lies: ``image_id -> (part file, byte offset)``.

    Records are read back one at a time by seeking, so assembling the final files of a 100k-image
    run never holds more than one image's masks. Building the index parses only the record headers.
    """

    def __init__(self, parts_dir: str) -> None:
        self.parts_dir = parts_dir
        self.where: dict[str, tuple[str, int]] = {}
        self.errors: dict[str, str] = {}
        self._handles: dict[str, object] = {}
        if not os.path.isdir(parts_dir):
            return
        for name in sorted(os.listdir(parts_dir)):
            if not (name.startswith("part-") and name.endswith(".jsonl")):
                continue  # temporaries of a killed run
            path = os.path.join(parts_dir, name)
            with open(path, "rb") as f:
                offset = 0
                for lineno, line in enumerate(f, start=1):
                    if line.strip():
                        try:
                            header = json.loads(line.split(b"\t", 1)[0])
                            image_id = header["image_id"]
                        except (ValueError, KeyError, TypeError) as e:
                            raise ValueError(
                                f"{path}:{lineno}: bad part record ({e}); delete the file to redo its images"
                            ) from None
                        self.where[image_id] = (path, offset)
                        if "error" in header:
                            self.errors[image_id] = header["error"]
                    offset += len(line)

    def __contains__(self, image_id: str) -> bool:
        return image_id in self.where

    def json_lines(self, image_id: str) -> dict[str, str]:
        """A readable image's detections as JSON lines (no newline), keyed by LAYER_KEYS."""
        path, offset = self.where[image_id]
        f = self._handles.get(path)
        if f is None:
            if len(self._handles) >= 64:
                self.close()
            f = self._handles[path] = open(path, "rb")  # noqa: SIM115 - cached, closed in close()
        f.seek(offset)
        fields = f.readline().decode("utf-8").rstrip("\n").split("\t")
        if len(fields) != 1 + len(LAYER_KEYS):
            raise ValueError(f"{path}: the record of {image_id} has {len(fields) - 1} detections fields")
        return dict(zip(LAYER_KEYS, fields[1:]))

    def detections(self, image_id: str, key: str) -> Detections:
        return Detections.from_json(self.json_lines(image_id)[key])

    def close(self) -> None:
        for f in self._handles.values():
            f.close()
        self._handles.clear()
