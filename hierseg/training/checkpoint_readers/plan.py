"""Assignments from a checkpoint to a model, their strict check, and the report (log table) after loading.

A detector has five modules, named as in ``--init_modules`` (attribute of the model in brackets):
``backbone`` (``model.backbone``), ``fpn`` (``model.fpn``), ``rpn`` (``model.rpn_head``), ``box_head``
(``model.box_head``) and ``mask_head`` (``model.mask_head``).

Rules, for the modules asked for: every checkpoint variable of the module must have a counterpart in the
model and vice versa, with the same shape, or loading fails with an error naming the variable and
nothing is assigned; the one exception are **class-specific** variables (class logits, class box deltas,
class masks) whose shape differs (another number of classes): they are skipped, listed with the reason,
and keep their random initialisation. Modules not asked for keep their initialisation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

MODULES = ("backbone", "fpn", "rpn", "box_head", "mask_head")
MODULE_ATTRS = {
    "backbone": "backbone",
    "fpn": "fpn",
    "rpn": "rpn_head",
    "box_head": "box_head",
    "mask_head": "mask_head",
}


def parse_modules(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"all"`` / ``"backbone,fpn"`` / a list -> module names in canonical order; unknown names are an error."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not names:
        raise ValueError(f"init modules: none given (use 'all' or some of {', '.join(MODULES)})")
    if "all" in names:
        return MODULES
    bad = [n for n in names if n not in MODULES]
    if bad:
        raise ValueError(f"init modules: unknown module '{bad[0]}' (choose 'all' or from {', '.join(MODULES)})")
    return tuple(m for m in MODULES if m in names)


@dataclass
class Assignment:
    """One checkpoint variable -> one model variable.

    Attributes:
      module: one of :data:`MODULES`.
      name: the checkpoint variable (as ``tf.train.load_checkpoint`` lists it).
      target: our variable (``keras.Variable`` or ``tf.Variable``).
      transform: applied to the checkpoint value before the shape check (e.g. drop the background
        column of a Model Garden class layer); None = as is.
      class_specific: a shape difference means another class count: skip instead of failing.
    """

    module: str
    name: str
    target: object
    transform: Callable[[np.ndarray], np.ndarray] | None = None
    class_specific: bool = False


@dataclass
class InitReport:
    """What :func:`apply_assignments` did. ``loaded``: variables set per module; ``skipped``: (checkpoint
    variable, our variable path, reason); ``left_random``: our variable paths per module left as built."""

    path: str
    source: str
    modules: tuple[str, ...]
    loaded: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    left_random: dict[str, list[str]] = field(default_factory=dict)

    @property
    def num_loaded(self) -> int:
        return sum(self.loaded.values())

    def table(self) -> str:
        """The log table: one row per module (loaded / skipped / left random), then the skipped variables."""
        lines = [f"initialised from {self.path} ({self.source} checkpoint; modules: {','.join(self.modules)})"]
        lines.append(f"{'module':<10} {'loaded':>7} {'skipped':>8} {'left random':>12}")
        for m in MODULES:
            skipped = sum(1 for _, ours, _ in self.skipped if ours.startswith(MODULE_ATTRS[m] + "/"))
            lines.append(f"{m:<10} {self.loaded.get(m, 0):>7} {skipped:>8} {len(self.left_random.get(m, [])):>12}")
        for name, ours, reason in self.skipped:
            lines.append(f"  skipped {name} -> {ours}: {reason}")
        return "\n".join(lines)


def variable_path(var) -> str:
    """A model variable's path without the model's own name: ``backbone/stem_conv/kernel``."""
    return var.path.split("/", 1)[1] if "/" in var.path else var.path


def module_variables(model, module: str) -> list:
    """The variables of one module of ``model`` (empty when the model has no such attribute)."""
    layer = getattr(model, MODULE_ATTRS[module], None)
    return list(layer.variables) if layer is not None else []


def apply_assignments(
    model,
    reader,
    assignments: Sequence[Assignment],
    checkpoint_names: dict[str, list[str]],
    modules: Sequence[str],
    path: str,
    source: str,
) -> InitReport:
    """Checks every assignment of the requested ``modules``, then assigns them; returns the report.

    Args:
      reader: ``tf.train.load_checkpoint(path)``.
      checkpoint_names: per module, every checkpoint variable that belongs to it (to catch leftovers).

    Raises:
      ValueError: naming ``path`` and the variable, for a missing variable, a shape mismatch outside
        the class-specific layers, a checkpoint variable without counterpart, or a model variable
        without one (a count mismatch: another depth, head layout or norm setting).
    """
    shapes = reader.get_variable_to_shape_map()
    report = InitReport(path, source, tuple(modules))
    chosen = [a for a in assignments if a.module in modules]
    values = []
    for a in chosen:
        ours = variable_path(a.target)
        if a.name not in shapes:
            raise ValueError(f"{path}: {a.name} is missing ({source} checkpoint; needed for {ours}, module {a.module})")
        value = np.asarray(reader.get_tensor(a.name))
        if a.transform is not None:
            value = a.transform(value)
        if list(value.shape) != list(a.target.shape):
            if a.class_specific:
                report.skipped.append(
                    (a.name, ours, f"class-specific, shape {list(value.shape)} != ours {list(a.target.shape)}")
                )
                continue
            raise ValueError(
                f"{path}: variable {a.name} has shape {list(value.shape)}, the model's {ours} has "
                f"{list(a.target.shape)} (module {a.module}: the architectures differ)"
            )
        values.append((a, value))
    used = {a.name for a in chosen}
    for m in modules:
        extra = [n for n in checkpoint_names.get(m, []) if n not in used]
        if extra:
            raise ValueError(
                f"{path}: {len(extra)} variable(s) of module {m} have no counterpart in the model, e.g. "
                f"{extra[0]} (the architectures differ: depth, head layout or norm settings)"
            )
        mapped = {id(a.target) for a in chosen if a.module == m}
        missing = [variable_path(v) for v in module_variables(model, m) if id(v) not in mapped]
        if missing:
            raise ValueError(
                f"{path}: the model's {missing[0]} (module {m}) has no counterpart in the {source} "
                f"checkpoint ({len(missing)} such variable(s): the architectures differ)"
            )
    for a, value in values:
        dtype = getattr(a.target.dtype, "name", a.target.dtype)  # tf.DType or a Keras dtype string
        a.target.assign(value.astype(np.dtype(dtype)))
        report.loaded[a.module] = report.loaded.get(a.module, 0) + 1
    assigned = {id(a.target) for a, _ in values}
    for m in MODULES:
        left = [variable_path(v) for v in module_variables(model, m) if id(v) not in assigned]
        if left:
            report.left_random[m] = left
    log.info("%s", report.table())
    return report
