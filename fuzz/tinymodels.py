"""Tiny YOLO-seg-shaped ONNX models: the seeds of the ``load`` harness and its structured mode.

A model here is a few hundred bytes: one image input, a 4x4 average pool, and two 1x1 convolutions
giving a detections output ``[1, 4 + classes + coeffs, anchors]`` (or anchor-major, or end-to-end
``[1, K, 6 + coeffs]``) and prototypes ``[1, coeffs, H/4, W/4]`` (or NHWC), with Ultralytics-style
metadata. Shapes, dtypes and metadata are parameters, so the fuzzer can also build models that are
valid ONNX but wrong for edgeseg (which must answer with ModelError/ValueError).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


@dataclass
class Plan:
    """What to build. ``None`` in a shape means a dynamic dimension."""

    height: int | None = 64
    width: int | None = 64
    batch: int | None = 1
    classes: int = 2
    coeffs: int = 4
    anchors: int = 84  # of the (H/4) * (W/4) pooled cells; the first ones are kept
    kind: str = "raw"  # raw | anchor_major | e2e
    nhwc_protos: bool = False
    nhwc_input: bool = False
    dtype: int = TensorProto.FLOAT  # of the input and both outputs (a Cast is added for others)
    declared_det: list[int | str | None] | None = None  # override the declared detections shape
    declared_protos: list[int | str | None] | None = None
    extra_outputs: int = 0  # more outputs (copies of the prototypes)
    reshape_features: int | None = None  # a wrong feature count in the Reshape (shape inference reports it)
    metadata: dict[str, str] = field(
        default_factory=lambda: {
            "names": "{0: 'part', 1: 'hole'}",
            "stride": "32",
            "task": "segment",
            "imgsz": "[64, 64]",
        }
    )
    seed: int = 0


def _dim(d: int | str | None, name: str) -> int | str:
    return name if d is None else d


def build(plan: Plan) -> onnx.ModelProto:
    """The ModelProto for ``plan`` (not checked: invalid plans make models ONNX Runtime rejects)."""
    rng = np.random.default_rng(plan.seed)
    nc, nm = plan.classes, plan.coeffs
    feats = 6 + nm if plan.kind == "e2e" else 4 + nc + nm
    h, w = plan.height, plan.width
    in_shape = [_dim(plan.batch, "batch"), 3, _dim(h, "height"), _dim(w, "width")]
    if plan.nhwc_input:
        in_shape = [in_shape[0], in_shape[2], in_shape[3], 3]
    nodes, inits = [], []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, name))
        return name

    x = "images"
    if plan.dtype != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [x], ["images_f"], to=TensorProto.FLOAT))
        x = "images_f"
    if plan.nhwc_input:
        nodes.append(helper.make_node("Transpose", [x], ["images_nchw"], perm=[0, 3, 1, 2]))
        x = "images_nchw"
    nodes.append(helper.make_node("AveragePool", [x], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]))
    wp = (rng.normal(0, 1, (nm, 3, 1, 1))).astype(np.float32)
    bp = np.full(nm, 0.5, np.float32)  # positive prototypes and coefficients: non-empty masks
    nodes.append(helper.make_node("Conv", ["pooled", const("wp", wp), const("bp", bp)], ["protos_f"]))
    wd = (rng.normal(0, 0.5, (feats, 3, 1, 1))).astype(np.float32)
    bias = np.zeros(feats, np.float32)
    # boxes around the middle of the input and scores above the default conf, so calls give instances
    if plan.kind == "e2e":
        bias[:4] = [8, 8, 40, 40]  # x1 y1 x2 y2 in input pixels
        bias[4], bias[5] = 0.6, 0.0  # score, class 0
        wd[4:6] = 0.0
    else:
        bias[:4] = [32, 32, 16, 16]  # cx cy w h in input pixels
        wd[:4] *= 20
        bias[4 : 4 + nc] = 0.5
        wd[4 : 4 + nc] *= 0.1
    bias[feats - nm :] = 1.0
    nodes.append(helper.make_node("Conv", ["pooled", const("wd", wd), const("bd", bias)], ["feat"]))
    nodes.append(
        helper.make_node(
            "Reshape",
            ["feat", const("flat_shape", np.array([0, plan.reshape_features or feats, -1], np.int64))],
            ["flat"],
        )
    )
    keep = plan.anchors
    nodes.append(
        helper.make_node(
            "Slice",
            ["flat", const("s0", np.array([0], np.int64)), const("s1", np.array([keep], np.int64)),
             const("s2", np.array([2], np.int64))],
            ["det_f"],
        )
    )  # fmt: skip
    det = "det_f"
    if plan.kind in ("anchor_major", "e2e"):
        nodes.append(helper.make_node("Transpose", [det], ["det_t"], perm=[0, 2, 1]))
        det = "det_t"
    protos = "protos_f"
    if plan.nhwc_protos:
        nodes.append(helper.make_node("Transpose", [protos], ["protos_t"], perm=[0, 2, 3, 1]))
        protos = "protos_t"
    outs = [(det, "output0"), (protos, "output1")]
    for i in range(plan.extra_outputs):
        outs.append((protos, f"extra{i}"))
    for src, name in outs:
        if plan.dtype != TensorProto.FLOAT:
            nodes.append(helper.make_node("Cast", [src], [name], to=plan.dtype))
        else:
            nodes.append(helper.make_node("Identity", [src], [name]))

    hp = None if h is None else h // 4
    wq = None if w is None else w // 4
    if plan.kind == "e2e":
        det_shape: list = [_dim(plan.batch, "batch"), keep, feats]
    elif plan.kind == "anchor_major":
        det_shape = [_dim(plan.batch, "batch"), keep, feats]
    else:
        det_shape = [_dim(plan.batch, "batch"), feats, keep]
    proto_shape: list = [_dim(plan.batch, "batch"), nm, _dim(hp, "ph"), _dim(wq, "pw")]
    if plan.nhwc_protos:
        proto_shape = [proto_shape[0], proto_shape[2], proto_shape[3], nm]
    if plan.declared_det is not None:
        det_shape = [_dim(d, f"d{i}") for i, d in enumerate(plan.declared_det)]
    if plan.declared_protos is not None:
        proto_shape = [_dim(d, f"p{i}") for i, d in enumerate(plan.declared_protos)]
    outputs = [
        helper.make_tensor_value_info("output0", plan.dtype, det_shape),
        helper.make_tensor_value_info("output1", plan.dtype, proto_shape),
    ]
    outputs += [helper.make_tensor_value_info(f"extra{i}", plan.dtype, proto_shape) for i in range(plan.extra_outputs)]
    graph = helper.make_graph(
        nodes, "tinyseg", [helper.make_tensor_value_info("images", plan.dtype, in_shape)], outputs, inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeseg-fuzz")
    model.ir_version = IR_VERSION
    for key, value in plan.metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def build_bytes(plan: Plan) -> bytes:
    """``build(plan)`` serialized."""
    return build(plan).SerializeToString()


# The committed seeds of fuzz/corpus/load (see make_seeds.py): valid models of each supported layout.
SEEDS: dict[str, Plan] = {
    "raw.onnx": Plan(),
    "anchor_major.onnx": Plan(kind="anchor_major"),
    "e2e.onnx": Plan(
        kind="e2e",
        anchors=8,
        metadata={
            "names": "{0: 'part', 1: 'hole'}",
            "stride": "32",
            "task": "segment",
            "imgsz": "[64, 64]",
            "args": "{'nms': True}",
            "end2end": "True",
        },
    ),
    "nhwc_protos.onnx": Plan(nhwc_protos=True, coeffs=3),
    "dynamic.onnx": Plan(
        height=None, width=None, batch=None, anchors=16, metadata={"stride": "32", "task": "segment", "imgsz": "64"}
    ),
    "uint8.onnx": Plan(dtype=TensorProto.UINT8, metadata={"task": "segment"}),
}
