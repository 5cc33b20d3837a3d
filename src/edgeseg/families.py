"""Which family a model is: every family's detector is asked, exactly one must answer.

``build_spec`` checks what all families share (one image input of rank 4, its channel axis and
dtype), hands a ``LoadContext`` to each family's ``detect`` (or only the one ``head=`` forces),
and assembles the ``ModelSpec`` from the one layout found: class names, input size and
preprocessing. A model no family reads is an error listing its tensors and every supported layout.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .coco import COCO80_NAMES
from .errors import ModelError
from .heads import FAMILIES
from .runtimes.base import Runtime
from .spec import MAX_INPUT_SIDE, Layout, LoadContext, ModelSpec, unsupported

log = logging.getLogger("edgeseg")

SIDECARS = ("pipeline", "deploy", "detail")  # MMDeploy's work-directory files, read when beside the model
MAX_SIDECAR_BYTES = 1 << 20  # real ones are a few kB: larger files are not MMDeploy's


def supported_layouts() -> str:
    """Every family's layouts, as listed in errors and ``edgeseg info --layouts``."""
    return "Supported layouts:\n" + "\n".join(f.layouts for f in FAMILIES.values() if f.layouts)


def read_sidecars(model_path: str | Path) -> dict[str, Any]:
    """The MMDeploy JSON files beside a model (``pipeline.json``, ``deploy.json``, ``detail.json``) that exist.

    A sidecar that is not JSON is a ModelError naming it: silently ignoring it would load the model
    with the wrong preprocessing.
    """
    found: dict[str, Any] = {}
    folder = Path(model_path).parent
    for name in SIDECARS:
        f = folder / f"{name}.json"
        if not f.is_file():
            continue
        if f.stat().st_size > MAX_SIDECAR_BYTES:
            raise ModelError(f"{f}: larger than {MAX_SIDECAR_BYTES} bytes; not an MMDeploy {name}.json")
        try:
            found[name] = json.loads(f.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelError(f"{f}: not valid JSON ({e}); fix or remove it") from None
    return found


def build_spec(
    path: str,
    rt: Runtime,
    names: Sequence[str] | None = None,
    imgsz: int | Sequence[int] | None = None,
    prototypes_layout: str | None = None,
    *,
    head: str | None = None,
    options: Mapping[str, Any] | None = None,
    sidecars: Mapping[str, Any] | None = None,
) -> ModelSpec:
    """Read a ModelSpec off a loaded model: the shared input facts, then the one family that reads it.

    Args:
        path: model file (for messages).
        rt: the loaded runtime.
        names: class names overriding the model's own.
        imgsz: input size overriding the model's default (dynamic-size models only), an int or (h, w).
        prototypes_layout: YOLO only: ``"NCHW"`` or ``"NHWC"`` for prototypes whose shapes cannot tell.
        head: force a family (``"yolact"``) instead of asking every one.
        options: family-specific load options.
        sidecars: parsed MMDeploy JSON files (default: read from beside ``path``).
    """
    opts = dict(options or {})
    if prototypes_layout is not None:
        opts["prototypes_layout"] = prototypes_layout
    layouts = supported_layouts()
    ctx = _context(path, rt, names, imgsz, opts, read_sidecars(path) if sidecars is None else dict(sidecars), layouts)
    if head is not None and head not in FAMILIES:
        raise ValueError(f"unknown head {head!r}; the families are: {', '.join(FAMILIES)}")
    families = [FAMILIES[head]] if head is not None else list(FAMILIES.values())
    known = {o for f in families for o in f.options}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ValueError(f"unknown load option(s) {', '.join(unknown)}; known: {', '.join(sorted(known)) or 'none'}")
    found = [layout for f in families if (layout := f.detect(ctx)) is not None]
    if not found:
        why = f"the outputs are not a {head} layout" if head else "the outputs match no supported model family"
        raise ctx.unsupported(why)
    if len(found) > 1:
        which = ", ".join(f"{x.family} ({x.head})" for x in found)
        raise ctx.unsupported(f"the outputs fit several families: {which}; pass head= to edgeseg.load to choose")
    return _spec(ctx, found[0])


def _context(
    path: str,
    rt: Runtime,
    names: Sequence[str] | None,
    imgsz: int | Sequence[int] | None,
    options: Mapping[str, Any],
    sidecars: Mapping[str, Any],
    layouts: str,
) -> LoadContext:
    user_names = tuple(str(n) for n in names) if names is not None else None

    def bare(why: str) -> ModelError:
        return unsupported(path, rt, why, layouts)

    task = rt.metadata.get("task", "segment")
    if task != "segment":
        raise bare(f"the model's metadata says task={task!r}; edgeseg runs segmentation models")
    if len(rt.inputs) != 1 or len(rt.inputs[0].shape) != 4:
        raise bare("expected one image input of rank 4")
    inp = rt.inputs[0]
    if inp.dtype not in (np.float32, np.int8, np.uint8):
        raise bare(f"input dtype {inp.dtype} is not supported (float32, int8, uint8)")
    if inp.dtype != np.float32 and inp.scale is None:
        raise bare(f"the {inp.dtype} input has no quantization parameters")
    _, d1, d2, d3 = inp.shape
    if d1 == 3 or (d1 is None and d3 != 3):
        layout, (h, w) = "NCHW", (d2, d3)
    elif d3 == 3:
        layout, (h, w) = "NHWC", (d1, d2)
    else:
        raise bare("cannot tell the input's channel axis (expected 3 channels)")
    if (h is None) != (w is None):
        raise bare("the input has one fixed and one dynamic side; export it fixed or fully dynamic")
    if h is not None and not (0 < h <= MAX_INPUT_SIDE and 0 < w <= MAX_INPUT_SIDE):
        raise bare(f"the input size {h}x{w} is outside 1..{MAX_INPUT_SIDE} pixels a side")
    return LoadContext(path, rt, inp, layout, (h, w), sidecars, user_names, imgsz, options, layouts)


def _spec(ctx: LoadContext, layout: Layout) -> ModelSpec:
    nc = layout.num_classes
    if nc is None and ctx.names is not None:
        nc = len(ctx.names)
    if ctx.names is not None:
        final_names = ctx.names
    elif layout.names is not None:
        final_names = layout.names
    elif nc == 80 or nc is None:
        final_names = COCO80_NAMES
        if nc is None:
            log.warning("%s: no class names in the model; assuming the 80 COCO classes (pass names=...)", ctx.path)
    else:
        final_names = tuple(f"class_{i}" for i in range(nc))
    if nc is not None and len(final_names) != nc:
        raise ValueError(
            f"{ctx.path}: the model predicts {nc} classes but {len(final_names)} names were given: pass {nc}"
        )
    return ModelSpec(
        path=str(ctx.path),
        runtime=ctx.runtime.name,
        family=layout.family,
        head=layout.head,
        task="segment",
        input=ctx.input,
        input_layout=ctx.input_layout,
        imgsz=ctx.input_size(layout.stride, layout.imgsz),
        dynamic_hw=ctx.input_hw[0] is None,
        batch=ctx.input.shape[0],
        stride=layout.stride,
        names=final_names,
        outputs=tuple(ctx.runtime.outputs),
        preprocess=layout.preprocess,
        defaults=layout.defaults,
        layout=layout.params,
        summary=layout.summary,
    )
