"""hierseg's own checkpoints -> a hierseg detector, whole or by module (a Layer0 model warm-starting
Layer1, or a COCO-trained hierseg model starting an Open Images one).

The training loop saves ``tf.train.Checkpoint(model={variable path: variable}, ...)``
(:func:`hierseg.training.checkpoints.make_checkpoint`), so a variable with path ``backbone/stem_conv/kernel``
is stored as ``model/backbone.Sstem_conv.Skernel/.ATTRIBUTES/VARIABLE_VALUE`` (TF escapes ``.`` as ``..``
and ``/`` as ``.S`` inside one object name). Class-specific layers (``box_head/class_logits``,
``box_head/box_deltas``, ``mask_head/mask_logits``) whose shape differs are skipped and listed.
"""

from __future__ import annotations

from hierseg.training.checkpoint_readers.plan import MODULE_ATTRS, MODULES, Assignment, variable_path
from hierseg.training.checkpoints import _checkpoint_key

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
CLASS_SPECIFIC = ("box_head/class_logits/", "box_head/box_deltas/", "mask_head/mask_logits/")


def checkpoint_key(path: str) -> str:
    """The checkpoint variable name of the model variable with this path (the checkpoints module's rule)."""
    return _checkpoint_key(path)


def path_of_key(name: str) -> str | None:
    """Inverse of :func:`checkpoint_key` (None for names that are not model variables)."""
    if not (name.startswith("model/") and name.endswith(_SUFFIX)):
        return None
    escaped = name[len("model/") : -len(_SUFFIX)]
    if "/" in escaped:  # optimizer slots and other nested objects
        return None
    return escaped.replace(".S", "/").replace("..", ".")


def is_hierseg(names) -> bool:
    return any((path_of_key(n) or "").startswith("backbone/") for n in names)


def hierseg_assignments(model, names) -> tuple[list[Assignment], dict[str, list[str]]]:
    """(assignments of every module variable of ``model``, checkpoint variables per module)."""
    by_attr = {attr: module for module, attr in MODULE_ATTRS.items()}
    assignments = []
    for module in MODULES:
        layer = getattr(model, MODULE_ATTRS[module], None)
        for v in layer.variables if layer is not None else []:
            path = variable_path(v)
            assignments.append(Assignment(module, checkpoint_key(path), v, None, path.startswith(CLASS_SPECIFIC)))
    per_module: dict[str, list[str]] = {}
    for n in names:
        path = path_of_key(n)
        if path is not None and path.split("/", 1)[0] in by_attr:
            per_module.setdefault(by_attr[path.split("/", 1)[0]], []).append(n)
    return assignments, per_module
