"""Model health: degenerate outputs that otherwise show up only as "no detections".

A badly quantized model can output class scores that are all about zero, NaNs, or quantized
tensors stuck at their type's limits. ``check_model`` runs the model once on the built-in scene
and says which. ``Model`` also looks at the outputs of its first inference, but there it warns only
on what a healthy model can never output (NaN/inf, saturated quantized tensors): low scores on a
user's first frame (a black camera frame, a blank belt) say nothing about the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .model import Model
    from .spec import ModelSpec

# Collapsed models score exactly 0; healthy ones score above 0.1 even on the synthetic scene.
MIN_MAX_SCORE = 1e-3
MAX_SATURATED = 0.05  # fraction of a quantized output clipped at its type's maximum


@dataclass
class HealthReport:
    """What a health check found: ``problems`` is empty for a healthy model."""

    max_class_score: float | None
    nonfinite_outputs: list[str] = field(default_factory=list)
    saturated_outputs: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found."""
        return not self.problems


def inspect_outputs(spec: ModelSpec, outputs: list[np.ndarray], max_class_score: float | None) -> HealthReport:
    """Check raw outputs of one inference of the model described by ``spec`` (a ModelSpec).

    ``max_class_score`` is judged only when given: pass it for an input known to hold objects (the
    built-in scene), None for arbitrary frames.
    """
    report = HealthReport(max_class_score=max_class_score)
    for info, value in zip(spec.outputs, outputs):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            report.nonfinite_outputs.append(info.name)
            report.problems.append(f"output {info.name} contains NaN or infinite values")
        if info.scale is not None and value.dtype.kind in "iu":
            # Only the top counts: activations such as SiLU legitimately pile up at the bottom.
            frac = float(np.mean(value == np.iinfo(value.dtype).max))
            if frac > MAX_SATURATED:
                report.saturated_outputs[info.name] = frac
                report.problems.append(
                    f"{frac:.0%} of quantized output {info.name} sits at the {value.dtype} maximum "
                    "(saturated: the quantization range is too narrow)"
                )
    if max_class_score is not None and not report.nonfinite_outputs and max_class_score < MIN_MAX_SCORE:
        report.problems.append(
            f"every class score is about zero (max {max_class_score:.2g}): the model cannot detect anything; "
            "a broken export or quantization is the usual cause (re-quantize keeping the detection head in "
            "float, e.g. with `edgeseg quantize`)"
        )
    return report


def check_model(model: Model) -> HealthReport:
    """Run ``model`` once on the built-in synthetic scene and inspect its raw outputs."""
    from .sample import synthetic_image

    spec = model.spec
    tensor, _ = model.preprocess([synthetic_image(*spec.imgsz)])
    outputs = model.runtime.run({spec.input.name: tensor})
    return inspect_outputs(spec, outputs, model.head.max_class_score(outputs, 0))
