"""Static INT8 quantization of ONNX YOLO-seg models (QDQ), calibrated on the SDK's own letterbox.

What stays in float, and why: everything between the head's last convolutions and the graph
outputs — the DFL softmax and its expectation convolution, the box decoding (anchor offsets,
stride multiplication), the class sigmoid, the final concatenation of boxes (0..640 pixels),
scores (0..1) and mask coefficients into one tensor, and the prototype activation. One int8 scale
cannot hold both pixel coordinates and probabilities, so quantizing that concatenation is what
collapses naive full-INT8 exports (scores all about zero, see ``edgeseg info --check``). These
ops are cheap; the convolutions, where the time goes, are quantized.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError, ModelError
from .io import list_images, read_image
from .preprocess import make_input
from .spec import ModelSpec


@dataclass
class QuantizeReport:
    """What ``quantize`` produced."""

    output: str
    fp32_mb: float
    int8_mb: float
    calibration_images: int
    per_channel: bool
    excluded_nodes: list[str]


def head_nodes(model_path: str | Path) -> list[str]:
    """Names of the nodes kept in float: those between the last convolutions and the outputs.

    Walks back from every graph output through non-convolution nodes, and through DFL's
    one-output-channel expectation convolution, stopping at the head's real convolutions.
    """
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    producer = {out: node for node in graph.node for out in node.output}
    initializers = {init.name: init for init in graph.initializer}

    def is_expectation_conv(node: onnx.NodeProto) -> bool:
        weight = initializers.get(node.input[1]) if len(node.input) > 1 else None
        return weight is not None and len(weight.dims) == 4 and weight.dims[0] == 1 and weight.dims[2:] == [1, 1]

    keep: list[str] = []
    seen: set[str] = set()
    stack = [o.name for o in graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type == "Conv" and not is_expectation_conv(node):
            continue
        keep.append(node.name)
        stack.extend(node.input)
    return keep


class _Calibration:
    """onnxruntime's CalibrationDataReader: letterboxed images, as the SDK feeds the model."""

    def __init__(self, paths: list[Path], spec: ModelSpec, progress: bool) -> None:
        from tqdm import tqdm

        self._paths = paths
        self._spec = spec
        self._bar = tqdm(total=len(paths), desc="calibrate", unit="img", disable=not progress)
        self._iter = self._feeds()

    def _feeds(self) -> Iterator[dict[str, np.ndarray]]:
        for path in self._paths:
            tensor, _ = make_input([read_image(path)], self._spec, self._spec.imgsz, batch=1)
            self._bar.update()
            yield {self._spec.input.name: tensor}
        self._bar.close()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)

    def rewind(self) -> None:
        self._bar.reset()
        self._iter = self._feeds()


def quantize(
    model: str | Path,
    calib: str | Path,
    output: str | Path,
    calib_size: int = 64,
    per_channel: bool = False,
    progress: bool = True,
    activations: str = "uint8",
    split_head: str | None = None,
) -> QuantizeReport:
    """Quantize an FP32 ONNX YOLO-seg model to static INT8 (QDQ: uint8 activations, int8 weights).

    Args:
        model: the FP32 ``.onnx`` model.
        calib: a folder of calibration images (a few dozen representative frames suffice).
        output: where to write the INT8 ``.onnx``.
        calib_size: most calibration images used.
        per_channel: per-channel weight scales (often more accurate, slightly slower on some CPUs).
        progress: show a progress bar.
        activations: ``"uint8"`` (asymmetric; the fast path of ONNX Runtime on x86) or ``"int8"``
            (symmetric; signed-by-signed dot products, native on ARM). On coco-val-mini with
            yolov8n-seg both lose about 1 to 3 mask mAP points (int8 is not reliably better), and ONNX
            Runtime runs int8 activations 1.8x slower than FP32 on x86: measure on your device.
        split_head: instead of keeping the head's decoding in float, split the head first into this NPU
            layout (``"rknn"``, ``"hailo"``, ``"qai"`` or ``"edgefirst"``, see ``edgeseg.headsplit``) and quantize
            everything: every output becomes an int8/uint8 tensor with its own scale (recorded in the model's
            metadata), decoded by edgeseg in the integer domain. No float node is left in the head.
    """
    try:
        import onnx  # noqa: F401 - onnxruntime.quantization needs it
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError as exc:
        raise ImportError("edgeseg quantize needs the onnx package: pip install 'edgeseg[quantize]'") from exc

    from .model import load

    model, output = Path(model), Path(output)
    if model.suffix.lower() != ".onnx":
        raise ModelError(f"{model}: edgeseg quantize takes an FP32 .onnx model")
    if output.resolve() == model.resolve():
        raise ValueError(f"{output}: would overwrite the input model; choose another output path")
    spec = load(model).spec
    if spec.input.dtype != np.float32:
        raise ModelError(f"{model}: expected a float32 input, found {spec.input.describe()}")
    if calib_size < 1:
        raise ValueError("calib_size must be >= 1")
    if activations not in ("uint8", "int8"):
        raise ValueError(f"activations must be 'uint8' or 'int8', got {activations!r}")
    paths = list_images(calib)[:calib_size]
    if not paths:
        raise ImageError(f"{calib}: no calibration images in this folder")

    with tempfile.TemporaryDirectory() as tmp:
        source = model
        if split_head is not None:
            from .headsplit import split_head as split

            source = Path(tmp) / "split.onnx"
            names = split(model, source, split_head)
            spec = load(source).spec  # the split layout's input (NHWC for some)
            # Score sums (clipped) and best-class scores (a max of sigmoids) are in 0..1 by construction.
            bounded = {n: (0.0, 1.0) for n in names if n.startswith("score_sum") or n == "scores"}
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        excluded = head_nodes(prepared) if split_head is None else []
        quantize_static(
            str(prepared),
            str(output),
            _Calibration(paths, spec, progress),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=excluded,
            extra_options={"ActivationSymmetric": activations == "int8"},
        )
        if split_head is not None:
            _expose_quantized_outputs(output, bounded)
        how = "head kept in float" if split_head is None else f"head split ({split_head}), int8 outputs"
        _copy_metadata(source, output, f"static int8 (QDQ), {how}")
    return QuantizeReport(
        output=str(output),
        fp32_mb=os.path.getsize(model) / 1e6,
        int8_mb=os.path.getsize(output) / 1e6,
        calibration_images=len(paths),
        per_channel=per_channel,
        excluded_nodes=excluded,
    )


def _expose_quantized_outputs(path: Path, bounded: dict[str, tuple[float, float]]) -> None:
    """Make each graph output the quantized tensor itself: drop the DequantizeLinear before it and record its
    scale and zero point in the metadata (``edgeseg.output_quant``), so the host reads integers.

    ONNX Runtime quantizes no ReduceSum or ReduceMax: an output left in float whose range is known (``bounded``: name ->
    (low, high)) gets a QuantizeLinear to uint8 over that range; any other float output stays float (the
    decoders read each output in its own dtype).
    """
    import json

    import onnx
    from onnx import numpy_helper

    from .runtimes.onnxruntime import OUTPUT_QUANT_KEY

    m = onnx.load(str(path))
    g = m.graph
    producer = {out: node for node in g.node for out in node.output}
    inits = {i.name: i for i in g.initializer}
    table: dict[str, list] = {}
    for out in g.output:
        node = producer.get(out.name)
        renamer = None
        while node is not None and node.op_type == "Identity":
            renamer, node = node, producer.get(node.input[0])
        if node is None or node.op_type != "DequantizeLinear":
            if out.name in bounded:
                lo, hi = bounded[out.name]
                scale, zp = (hi - lo) / 255.0, round(-lo / ((hi - lo) / 255.0))
                src = f"{out.name}_float"
                for n in g.node:  # the node making the output now makes its float source
                    n.output[:] = [src if o == out.name else o for o in n.output]
                g.initializer.extend([
                    numpy_helper.from_array(np.array(scale, np.float32), f"{out.name}_scale"),
                    numpy_helper.from_array(np.array(zp, np.uint8), f"{out.name}_zp"),
                ])  # fmt: skip
                g.node.append(
                    onnx.helper.make_node("QuantizeLinear", [src, f"{out.name}_scale", f"{out.name}_zp"], [out.name])
                )
                out.type.tensor_type.elem_type = onnx.TensorProto.UINT8
                table[out.name] = [scale, zp]
            continue
        q_tensor, scale_name, zp_name = node.input[0], node.input[1], node.input[2]
        scale = float(numpy_helper.to_array(inits[scale_name]).reshape(()))
        zp_arr = numpy_helper.to_array(inits[zp_name])
        if renamer is not None:
            renamer.input[0] = q_tensor
        else:  # the DequantizeLinear made the output: let it pass the integers through instead
            g.node.remove(node)
            g.node.append(onnx.helper.make_node("Identity", [q_tensor], [out.name], name=f"{out.name}_int"))
        out.type.tensor_type.elem_type = onnx.helper.np_dtype_to_tensor_dtype(zp_arr.dtype)
        table[out.name] = [scale, int(zp_arr.reshape(()))]
    used = {i for node in g.node for i in node.input}
    for node in [
        n
        for n in g.node
        if n.op_type == "DequantizeLinear" and not any(o in used or o in {x.name for x in g.output} for o in n.output)
    ]:
        g.node.remove(node)
    m.metadata_props.add(key=OUTPUT_QUANT_KEY, value=json.dumps(table))
    onnx.save(m, str(path))


def _copy_metadata(source: Path, target: Path, how: str) -> None:
    """Keep the class names, imgsz, stride and task in the quantized model, so it loads with no configuration."""
    import onnx

    src, dst = onnx.load(str(source), load_external_data=False), onnx.load(str(target))
    existing = {p.key for p in dst.metadata_props}
    for prop in src.metadata_props:
        if prop.key not in existing:
            dst.metadata_props.add(key=prop.key, value=prop.value)
    dst.metadata_props.add(key="edgeseg.quantized", value=how)
    onnx.save(dst, str(target))
