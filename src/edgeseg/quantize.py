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
    spec = load(model).spec
    if spec.input.dtype != np.float32 or spec.input_layout != "NCHW":
        raise ModelError(f"{model}: expected a float32 NCHW input, found {spec.input.describe()}")
    if calib_size < 1:
        raise ValueError("calib_size must be >= 1")
    if activations not in ("uint8", "int8"):
        raise ValueError(f"activations must be 'uint8' or 'int8', got {activations!r}")
    paths = list_images(calib)[:calib_size]
    if not paths:
        raise ImageError(f"{calib}: no calibration images in this folder")

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        excluded = head_nodes(prepared)
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
    _copy_metadata(model, output)
    return QuantizeReport(
        output=str(output),
        fp32_mb=os.path.getsize(model) / 1e6,
        int8_mb=os.path.getsize(output) / 1e6,
        calibration_images=len(paths),
        per_channel=per_channel,
        excluded_nodes=excluded,
    )


def _copy_metadata(source: Path, target: Path) -> None:
    """Keep the class names, imgsz, stride and task in the quantized model, so it loads with no configuration."""
    import onnx

    src, dst = onnx.load(str(source), load_external_data=False), onnx.load(str(target))
    existing = {p.key for p in dst.metadata_props}
    for prop in src.metadata_props:
        if prop.key not in existing:
            dst.metadata_props.add(key=prop.key, value=prop.value)
    dst.metadata_props.add(key="edgeseg.quantized", value="static int8 (QDQ), head kept in float")
    onnx.save(dst, str(target))
