"""Split the head of an Ultralytics YOLOv8/YOLO11-seg ONNX export into the layouts NPU toolchains use.

NPU toolchains quantize every output tensor with its own scale, so the exports made for them stop the graph
before the head concatenates boxes (pixels), scores (0..1) and mask coefficients into one tensor — the
concatenation one int8 scale cannot hold. This module does that cut on an FP32 export by graph surgery, so
the same weights run in every layout (and ``edgeseg quantize --split-head`` can quantize every output on its
own scale):

- ``rknn``: Rockchip rknn_model_zoo ``yolov8_seg``: 13 NCHW outputs, per stride (8, 16, 32) the box
  distribution logits ``[1, 64, H, W]`` (DFL: 16 bins x 4 sides), the class probabilities ``[1, nc, H, W]``
  (sigmoid in the graph), their sum clipped to 1 ``[1, 1, H, W]`` (a per-cell filter) and the mask
  coefficients ``[1, 32, H, W]``; then the prototypes ``[1, 32, 160, 160]``.
- ``hailo``: Hailo model zoo ``yolov8*_seg``: NHWC input; per stride ``[1, H, W, 64]`` box bins,
  ``[1, H, W, nc]`` class probabilities, ``[1, H, W, 32]`` coefficients, and prototypes ``[1, 160, 160, 32]``,
  in an order that is not grouped by role (Hailo lists outputs by layer name).
- ``qai``: Qualcomm AI Hub ``yolov8_seg``: NHWC input in 0..1; ``boxes [1, N, 4]`` (x1 y1 x2 y2 pixels),
  ``scores [1, N]`` (best class), ``class_idx [1, N]`` (uint8), ``mask_coeffs [1, N, 32]``,
  ``mask_protos [1, 160, 160, 32]``.
- ``edgefirst``: EdgeFirst two-way split: ``[1, 4 + nc, N]`` boxes (cx cy w h normalized to 0..1) and scores,
  ``[1, 32, N]`` coefficients, prototypes NHWC ``[1, 160, 160, 32]``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import ModelError

SPLIT_LAYOUTS = ("rknn", "hailo", "qai", "edgefirst")
# The output of each head branch's last convolution in an Ultralytics export (cv2 boxes, cv3 classes, cv4
# coefficients), by tensor name: the name survives ONNX Runtime's dynamic quantization, which replaces the node.
_BRANCH = re.compile(r"/model\.\d+/cv([234])\.(\d+)/cv\1\.\2\.2/Conv_output_0$")


def split_head(model: str | Path, output: str | Path, layout: str) -> list[str]:
    """Write ``model`` (an FP32 Ultralytics segmentation ONNX export) with its head split as ``layout``.

    Args:
        model: the fused export (outputs ``[1, 4 + nc + 32, N]`` and prototypes ``[1, 32, h, w]``).
        output: where to write the split model (never ``model`` itself).
        layout: one of ``SPLIT_LAYOUTS``.

    Returns:
        The output names of the written model, in order.
    """
    try:
        import onnx
        from onnx import helper
    except ImportError as exc:
        raise ImportError("splitting a head needs the onnx package: pip install 'edgeseg[quantize]'") from exc
    if layout not in SPLIT_LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(SPLIT_LAYOUTS)}, got {layout!r}")
    model, output = Path(model), Path(output)
    if output.resolve() == model.resolve():
        raise ValueError(f"{output}: would overwrite the input model; choose another output path")
    try:
        m = onnx.load(str(model))
    except OSError:
        raise
    except Exception as exc:  # protobuf's DecodeError and friends: not an ONNX file
        raise ModelError(f"{model}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    g = m.graph
    ranks = [len(o.type.tensor_type.shape.dim) for o in g.output]
    if len(g.input) != 1 or ranks != [3, 4]:
        raise ModelError(
            f"{model}: expected a fused Ultralytics export (one input; outputs [B, 4 + nc + 32, N] and prototypes "
            f"[B, 32, h, w]), found {len(g.input)} input(s) and outputs of rank {ranks}"
        )
    branches: dict[tuple[int, int], str] = {}
    for node in g.node:
        for tensor in node.output:
            hit = _BRANCH.search(tensor)
            if hit:
                branches[(int(hit.group(1)), int(hit.group(2)))] = tensor
    levels = sorted({level for _, level in branches})
    if not levels or any((kind, lv) not in branches for kind in (2, 3, 4) for lv in levels):
        raise ModelError(
            f"{model}: no Ultralytics segmentation head found (its cv2/cv3/cv4 branch convolutions); "
            "split_head reads exports of YOLOv8/YOLO11-seg made by Ultralytics"
        )
    det_name, proto_name = g.output[0].name, g.output[1].name
    b = _Builder(g, helper)
    if layout in ("hailo", "qai"):  # NHWC input, as those toolchains feed the model
        b.nhwc_input()
    outs: list[tuple[str, str]] = []  # (tensor, output name)
    if layout in ("rknn", "hailo"):
        per_level = []
        for lv in levels:
            box, cls_logit, coef = (branches[(k, lv)] for k in (2, 3, 4))
            cls = b.node("Sigmoid", [cls_logit], f"split_cls{lv}")
            per_level.append((lv, box, cls, coef))
        if layout == "rknn":
            for lv, box, cls, coef in per_level:
                total = b.node("ReduceSum", [cls, b.const_i64([1], f"axes{lv}")], f"split_sum{lv}", keepdims=1)
                clipped = b.node("Clip", [total, b.const_f([0.0], "zero"), b.const_f([1.0], "one")], f"split_ssum{lv}")
                outs += [(box, f"box{lv}"), (cls, f"cls{lv}"), (clipped, f"score_sum{lv}"), (coef, f"seg{lv}")]
            outs.append((proto_name, "proto"))
        else:
            nhwc = [0, 2, 3, 1]
            outs.append((b.node("Transpose", [proto_name], "split_proto", perm=nhwc), "proto"))
            for lv, box, cls, coef in reversed(per_level):  # deliberately not grouped by role or stride order
                outs.append((b.node("Transpose", [coef], f"split_coef{lv}", perm=nhwc), f"coef{lv}"))
                outs.append((b.node("Transpose", [box], f"split_box{lv}", perm=nhwc), f"box{lv}"))
                outs.append((b.node("Transpose", [cls], f"split_clsT{lv}", perm=nhwc), f"cls{lv}"))
    else:
        # The fused head ends in Concat(boxes xywh pixels [1, 4, N], class probabilities [1, nc, N], coefficients
        # [1, nm, N]): these layouts start from its three inputs, never from the concatenation, so each part
        # can keep its own scale when quantized.
        final = next((n for n in g.node if det_name in n.output), None)
        if final is None or final.op_type != "Concat" or len(final.input) != 3:
            raise ModelError(f"{model}: the detections output is not the head's Concat(boxes, scores, coefficients)")
        xywh, cls, coef = final.input
        nhwc = [0, 2, 3, 1]
        if layout == "edgefirst":  # boxes normalized to 0..1 (the input size), so boxes and scores share a scale
            in_h, in_w = (d.dim_value for d in g.input[0].type.tensor_type.shape.dim[2:])
            size = b.const_f4d([in_w, in_h, in_w, in_h], "insize")
            norm = b.node("Div", [xywh, size], "split_norm")
            det = b.node("Concat", [norm, cls], "split_det", axis=1)
            outs += [(det, "detection"), (coef, "mask_coeff")]
            outs.append((b.node("Transpose", [proto_name], "split_proto", perm=nhwc), "protos"))
        else:  # qai
            rows = b.node("Transpose", [xywh], "split_rows", perm=[0, 2, 1])  # [1, N, 4]

            def cols(lo: int, hi: int, tag: str) -> str:
                starts, ends = b.const_i64([lo], f"{tag}_lo"), b.const_i64([hi], f"{tag}_hi")
                return b.node("Slice", [rows, starts, ends, b.const_i64([2], "ax2")], tag)

            xy, wh = cols(0, 2, "split_xy"), cols(2, 4, "split_wh")
            half = b.node("Div", [wh, b.const_f([2.0], "two")], "split_half")
            x1y1, x2y2 = b.node("Sub", [xy, half], "split_x1y1"), b.node("Add", [xy, half], "split_x2y2")
            boxes = b.node("Concat", [x1y1, x2y2], "split_boxes", axis=2)
            scores = b.node("ReduceMax", [cls], "split_scores", axes=[1], keepdims=0)
            idx = b.node("ArgMax", [cls], "split_argmax", axis=1, keepdims=0)
            class_idx = b.node("Cast", [idx], "split_class_idx", to=onnx.TensorProto.UINT8)
            coeffs = b.node("Transpose", [coef], "split_coef", perm=[0, 2, 1])
            proto = b.node("Transpose", [proto_name], "split_proto", perm=nhwc)
            outs += [
                (boxes, "boxes"), (scores, "scores"), (class_idx, "class_idx"), (coeffs, "mask_coeffs"),
                (proto, "mask_protos"),
            ]  # fmt: skip

    b.set_outputs(outs)
    b.prune()
    m.metadata_props.add(key="edgeseg.split_head", value=layout)
    inferred = onnx.shape_inference.infer_shapes(m)
    types = {vi.name: vi.type for vi in inferred.graph.value_info}
    for vi in m.graph.output:
        vi.type.CopyFrom(types[vi.name])
    onnx.checker.check_model(m)
    # Written beside the target and renamed into place: an interrupted run never leaves half a model there.
    tmp = output.with_name(f".{output.name}.partial")
    try:
        onnx.save(m, str(tmp))
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    return [name for _, name in outs]


class _Builder:
    """Appends nodes and constants to a graph, and renames the chosen tensors to become its outputs."""

    def __init__(self, graph: Any, helper: Any) -> None:
        self.g, self.h = graph, helper
        self._consts: set[str] = set()

    def node(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        out = f"{name}_out"
        self.g.node.append(self.h.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def _const(self, values: list, name: str, dtype: int) -> str:
        key = f"split_const_{name}"
        if key not in self._consts:
            self._consts.add(key)
            self.g.initializer.append(self.h.make_tensor(key, dtype, [len(values)], values))
        return key

    def const_i64(self, values: list[int], name: str) -> str:
        return self._const(values, name, 7)  # TensorProto.INT64

    def const_f(self, values: list[float], name: str) -> str:
        return self._const(values, name, 1)  # TensorProto.FLOAT

    def const_f4d(self, values: list[float], name: str) -> str:
        """A [1, len, 1] float constant (broadcast over channels of a [B, C, N] tensor)."""
        key = f"split_const_{name}"
        if key not in self._consts:
            self._consts.add(key)
            self.g.initializer.append(self.h.make_tensor(key, 1, [1, len(values), 1], values))
        return key

    def nhwc_input(self) -> None:
        """Make the input [B, H, W, 3], transposed to the NCHW the convolutions read."""
        inp = self.g.input[0]
        dims = inp.type.tensor_type.shape.dim
        b, c, h, w = (d.dim_value or d.dim_param for d in dims)
        old = inp.name
        self.g.input.remove(inp)
        new = f"{old}_nhwc"
        self.g.input.append(self.h.make_tensor_value_info(new, 1, [b, h, w, c]))
        # the transpose must come first: rename every use of the old input
        for node in self.g.node:
            for i, name in enumerate(node.input):
                if name == old:
                    node.input[i] = f"{old}_nchw"
        self.g.node.insert(
            0, self.h.make_node("Transpose", [new], [f"{old}_nchw"], name="split_input", perm=[0, 3, 1, 2])
        )

    def set_outputs(self, outs: list[tuple[str, str]]) -> None:
        """Expose ``outs`` (tensor, name) as the graph outputs, each through an Identity so names are free."""
        while len(self.g.output):
            self.g.output.pop()
        for tensor, name in outs:
            self.g.node.append(self.h.make_node("Identity", [tensor], [name], name=f"split_output_{name}"))
            self.g.output.append(self.h.make_empty_tensor_value_info(name))

    def prune(self) -> None:
        """Drop the nodes and constants no output needs any more (the fused head's decoding)."""
        needed = {o.name for o in self.g.output}
        keep = []
        for node in reversed(self.g.node):
            if any(o in needed for o in node.output):
                keep.append(node)
                needed.update(i for i in node.input if i)
        del self.g.node[:]
        self.g.node.extend(reversed(keep))
        unused = [init for init in self.g.initializer if init.name not in needed]
        for init in unused:
            self.g.initializer.remove(init)
