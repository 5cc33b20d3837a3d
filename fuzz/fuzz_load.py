#!/usr/bin/env python3
"""Fuzz ``edgeseg.load`` on mutated model files, then one call of the loaded model.

Two kinds of input:

* raw (the default): the input is the model file itself; the seeds are tiny valid models of each
  supported layout (``tinymodels.SEEDS``), so mutations give truncated, corrupt and subtly wrong files;
* structured: an input starting with ``ESFZ`` describes a model (shapes, dtypes, layout, metadata
  strings) that ``tinymodels.build`` turns into valid ONNX that may still be wrong for edgeseg.

``load`` must return a Model or raise ``ModelError``/``ValueError``; a loaded model called on a small
image must return a well-formed Result (boxes and masks inside the image) or raise ``ValueError``.

    python fuzz/fuzz_load.py fuzz/corpus/load -max_total_time=60
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["fuzzlib", "tinymodels", "edgeseg"], exclude=["edgeseg._core"]):
    import fuzzlib
    import tinymodels

    import edgeseg
    from edgeseg.runtimes.onnxruntime import OnnxRuntime

import fuzzcheck
import numpy as np
from onnx import TensorProto

MAGIC = b"ESFZ"
MAX_DIM = 1 << 20  # an output dimension above this is absurd for a segmentation model (finding F14)
TMP = Path(tempfile.mkdtemp(prefix="edgeseg-fuzz-load-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
MODEL = TMP / "model.onnx"
IMAGE = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
logging.getLogger("edgeseg").setLevel(logging.ERROR)  # degenerate-output warnings are expected here

# Metadata values Ultralytics writes, and values that are wrong in each way ast.literal_eval allows.
META_VALUES = {
    "names": ("{0: 'part', 1: 'hole'}", "['a', 'b']", "{}", "[]", "{0: 'a'}", "{'x': 1}", "{0: 'a', 2: 'b'}",
              "None", "'ab'", "[1, 2]", "{-1: 'a', 0: 'b'}", "{0: 'a', 1: 'b', 2: 'c'}", "{True: 'a', 1: 'b'}"),
    "stride": ("32", "8", "0", "-32", "[1]", "1e999", "None", "'a'", "1j", "(32,)", "True", "3.5", "'32'", "10**400"),
    "imgsz": ("[64, 64]", "64", "[0, 0]", "[None, None]", "['a', 'b']", "[64]", "[-64, 64]", "[32, 96]", "[64, 64, 64]",
              "1e999", "[1e3, 64]", "(64.5, 64)"),
    "task": ("segment", "detect", "", "Segment"),
    "args": ("{'nms': True}", "{'nms': 1}", "[1]", "None", "{'nms': False}", "{"),
    "end2end": ("True", "False", "1"),
}  # fmt: skip
DTYPES = (
    TensorProto.FLOAT,
    TensorProto.UINT8,
    TensorProto.INT8,
    TensorProto.FLOAT16,
    TensorProto.DOUBLE,
    TensorProto.INT64,
)


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    """Load ``data`` (or the model it describes) and, if it loads, run it once."""
    kwargs: dict = {}
    if data.startswith(MAGIC):
        fdp = atheris.FuzzedDataProvider(data[len(MAGIC) :])
        plan = fuzz_plan(fdp)
        try:
            data = tinymodels.build_bytes(plan)
        except (ValueError, TypeError):  # the onnx helpers refuse some plans: nothing to load
            return
        if fuzzlib.rarely(fdp, 4):
            kwargs["imgsz"] = fuzzlib.pick(fdp, (64, 32, (32, 64), 0, -32, 33, (64,), 4096, 10**6))
        if fuzzlib.rarely(fdp, 4):
            kwargs["names"] = fuzzlib.pick(fdp, (["a", "b"], ["a"], [], ["a", "b", "c"]))
    MODEL.write_bytes(data)
    if fuzzlib.known("F14", True):
        # Open the file as load will, to step around shapes with absurd dimensions (F14); a file ONNX
        # Runtime cannot open gives ModelError here as in load, so there is no need to try load.
        try:
            rt = OnnxRuntime(MODEL)
        except edgeseg.ModelError as exc:
            fuzzlib.classify(str(exc))
            return
        except UnicodeDecodeError:
            if fuzzlib.known("F15", True):
                return
            raise
        if any(d is not None and d > MAX_DIM for t in rt.outputs for d in t.shape):
            return
        del rt
    try:
        model = load(MODEL, **kwargs)
        if model is None:
            return
        fuzzlib.debug("model", spec=model.spec.describe())
        try:
            result = model(IMAGE)
        except ValueError as exc:
            fuzzlib.classify(str(exc))
            return
    except Exception as exc:
        if fuzzlib.known("F11", type(exc).__module__.startswith("onnxruntime")):
            return
        raise
    check(result)


def load(path: Path, **kwargs: object) -> edgeseg.Model | None:
    """``edgeseg.load``, or None when it raised ModelError/ValueError (anything else is a finding)."""
    try:
        return edgeseg.load(path, **kwargs)
    except edgeseg.ModelError as exc:
        assert str(path) in str(exc), "ModelError does not name the file"
        fuzzlib.classify(str(exc))
        return None
    except UnicodeDecodeError:
        if fuzzlib.known("F15", True):
            return None
        raise
    except ValueError as exc:  # bad arguments (imgsz=, names=) are plain ValueErrors
        fuzzlib.classify(str(exc))
        return None


def fuzz_plan(fdp: atheris.FuzzedDataProvider) -> tinymodels.Plan:
    """A model description from the fuzz data: mostly a valid model with one or two things wrong."""
    dims = (64, 32, 96, None, 0, 4, 63)
    plan = tinymodels.Plan(
        height=fuzzlib.pick(fdp, dims) if fuzzlib.rarely(fdp, 3) else 64,
        width=fuzzlib.pick(fdp, dims) if fuzzlib.rarely(fdp, 3) else 64,
        batch=fuzzlib.pick(fdp, (1, None, 2, 0)) if fuzzlib.rarely(fdp, 3) else 1,
        classes=fdp.ConsumeIntInRange(1, 5),
        coeffs=fdp.ConsumeIntInRange(1, 6),
        anchors=fuzzlib.pick(fdp, (84, 16, 1, 300, 8)),
        kind=fuzzlib.pick(fdp, ("raw", "anchor_major", "e2e")),
        nhwc_protos=fdp.ConsumeBool(),
        nhwc_input=fuzzlib.rarely(fdp, 6),
        dtype=fuzzlib.pick(fdp, DTYPES) if fuzzlib.rarely(fdp, 4) else TensorProto.FLOAT,
        extra_outputs=1 if fuzzlib.rarely(fdp, 8) else 0,
        # a Reshape to the wrong feature count: shape inference reports it as the output's shape
        reshape_features=fuzzlib.pick(fdp, (7, 2**21, 2**44)) if fuzzlib.rarely(fdp, 16) else None,
        seed=fdp.ConsumeIntInRange(0, 255),
    )
    # Metadata as Ultralytics writes it for this model, then now and then a key wrong or missing.
    names = ", ".join(f"{i}: 'c{i}'" for i in range(plan.classes))
    meta = {"names": f"{{{names}}}", "stride": "32", "task": "segment", "imgsz": f"[{plan.height}, {plan.width}]"}
    if plan.kind == "e2e":
        meta["args"] = "{'nms': True}"
    for key, values in META_VALUES.items():
        if not fuzzlib.rarely(fdp, 6):
            continue
        choice = fdp.ConsumeIntInRange(0, len(values) + 1)
        if choice < len(values):
            meta[key] = values[choice]
        elif choice == len(values):
            meta[key] = fdp.ConsumeUnicodeNoSurrogates(12)
        else:
            meta.pop(key, None)
    plan.metadata = meta
    if fuzzlib.rarely(fdp, 4):
        plan.declared_det = [
            fuzzlib.pick(fdp, (1, None, 10, 84, 0, 3, 5, 16)) for _ in range(fdp.ConsumeIntInRange(2, 4))
        ]
    if fuzzlib.rarely(fdp, 4):
        plan.declared_protos = [
            fuzzlib.pick(fdp, (1, None, 4, 16, 0, 3, 32)) for _ in range(fdp.ConsumeIntInRange(3, 5))
        ]
    return plan


def check(result: edgeseg.Result) -> None:
    """A Result for IMAGE: consistent lengths, boxes and masks inside the image."""
    h, w = IMAGE.shape[:2]
    n = len(result)
    fuzzlib.bucket(n)
    assert result.image_shape == (h, w)
    fuzzcheck.check_array(result.boxes, np.float32, (n, 4))
    fuzzcheck.check_array(result.class_ids, np.int32, (n,))
    assert len(result.masks) == n
    assert np.isfinite(result.boxes).all() and np.isfinite(result.scores).all()
    assert (result.boxes >= 0).all() and (result.boxes[:, [0, 2]] <= w).all() and (result.boxes[:, [1, 3]] <= h).all()
    assert ((result.class_ids >= 0) & (result.class_ids < len(result.names))).all()
    r = result.masks.rects.astype(np.int64)
    assert (r >= 0).all() and (r[:, 0] + r[:, 2] <= w).all() and (r[:, 1] + r[:, 3] <= h).all()
    assert len(result.masks.rle()) == n


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
