"""ModelSpec: what edgeseg learns about a model once, at load time, from its metadata and graph.

Everything downstream reads the spec; nothing downstream re-guesses from shapes.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ModelError
from .runtimes.base import Runtime, TensorInfo

log = logging.getLogger("edgeseg")

RESIZE_MODES = ("letterbox", "keep_ratio", "stretch")
NMS_KINDS = ("box", "fast", "matrix", "mask")


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the model's input, as the family's reference pipeline does it.

    Attributes:
        resize: ``"letterbox"`` (aspect kept, centred, as Ultralytics), ``"keep_ratio"`` (aspect kept,
            top-left, padded bottom-right, as MMDetection) or ``"stretch"`` (resized to the input exactly,
            as YOLACT).
        pad_value: grey level (0..255) of the padding, or None to pad with zeros after normalization
            (MMDetection's data preprocessor).
        mean, std: per input channel, in pixel units (0..255), in the input's channel order: the input is
            ``(pixel - mean) / std``. Ultralytics: mean 0, std 255 (pixel / 255).
        rgb: the input's channels are R, G, B (else B, G, R as OpenCV reads them).
    """

    resize: str = "letterbox"
    pad_value: float | None = 114.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    rgb: bool = True

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values, got {self.mean!r} and {self.std!r}")
        if not all(np.isfinite(v) for v in (*self.mean, *self.std)) or min(self.std) <= 0:
            raise ValueError(f"mean must be finite and std positive, got {self.mean!r} and {self.std!r}")
        if self.pad_value is not None and not 0 <= self.pad_value <= 255:
            raise ValueError(f"pad_value must be in 0..255 or None, got {self.pad_value!r}")

    @property
    def scale_only(self) -> bool:
        """The input is pixel / 255 (the Ultralytics convention, computed bit-exactly as it does)."""
        return self.mean == (0.0, 0.0, 0.0) and self.std == (255.0, 255.0, 255.0)

    def describe(self) -> str:
        """One line for ``edgeseg info``."""
        norm = "pixel / 255" if self.scale_only else f"(pixel - {list(self.mean)}) / {list(self.std)}"
        pad = "zeros after normalization" if self.pad_value is None else f"grey {self.pad_value:g}"
        return f"{self.resize}, pad {pad}, {'RGB' if self.rgb else 'BGR'}, {norm}"


ULTRALYTICS_PREPROCESS = Preprocess()


@dataclass(frozen=True)
class Defaults:
    """A family's reference postprocess settings: what ``model(image)`` uses unless told otherwise."""

    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    nms: str = "box"
    mask_threshold: float = 0.5


@dataclass(frozen=True)
class Layout:
    """What a family's detector learned about a model: returned by ``Family.detect``.

    Attributes:
        family: the family's name (``"yolo"``, ``"yolact"``, ...).
        head: the layout's name, unique across families (``"yolo_e2e"``, ``"yolact_priors"``, ...).
        params: the family's own facts (a frozen dataclass: which output is which, channel counts, ...).
        num_classes: classes the outputs imply, or None when they cannot tell.
        summary: one line naming the layout and where it comes from, for ``edgeseg info``.
        names: class names found with the model (metadata, sidecar files), if any.
        preprocess: the family's (or the sidecar's) preprocessing.
        defaults: the reference postprocess settings.
        imgsz: input size for a dynamic-size input, when the family knows it (sidecar files).
        stride: the model's largest stride (dynamic inputs are multiples of it).
    """

    family: str
    head: str
    params: Any
    num_classes: int | None
    summary: str
    names: tuple[str, ...] | None = None
    preprocess: Preprocess = ULTRALYTICS_PREPROCESS
    defaults: Defaults = Defaults()
    imgsz: tuple[int, int] | None = None
    stride: int = 32


@dataclass(frozen=True)
class ModelSpec:
    """Everything about a model that pre- and postprocessing need.

    Attributes:
        path: model file.
        runtime: runtime name (``"onnxruntime"``).
        family: the model family (``"yolo"``, ``"yolact"``, ``"dets"``, ``"rtmdet"``, ``"solov2"``).
        head: the output layout within the family (``"yolo"``, ``"yolo_e2e"``, ...); picks the decoder.
        task: ``"segment"``.
        input: the image input tensor.
        input_layout: ``"NCHW"`` or ``"NHWC"``.
        imgsz: default input (height, width); for dynamic models the largest side it letterboxes into.
        dynamic_hw: whether the input height and width are dynamic.
        batch: fixed batch size, or None when the batch dimension is dynamic.
        stride: the model's largest stride; dynamic inputs are multiples of it.
        names: class names by class index.
        outputs: all outputs, as the runtime reports them (with the quantization of quantized ones).
        preprocess: how images become the input.
        defaults: the family's reference postprocess settings.
        layout: the family's own facts about the outputs (see each family's module).
        summary: one line naming the layout and its origin.
    """

    path: str
    runtime: str
    family: str
    head: str
    task: str
    input: TensorInfo
    input_layout: str
    imgsz: tuple[int, int]
    dynamic_hw: bool
    batch: int | None
    stride: int
    names: tuple[str, ...]
    outputs: tuple[TensorInfo, ...]
    preprocess: Preprocess = ULTRALYTICS_PREPROCESS
    defaults: Defaults = Defaults()
    layout: Any = None
    summary: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.names)

    def describe(self) -> str:
        """A human-readable summary, as printed by ``edgeseg info``."""
        batch = "dynamic" if self.batch is None else str(self.batch)
        d = self.defaults
        lines = [
            f"model:       {self.path}",
            f"runtime:     {self.runtime}",
            f"family:      {self.family}",
            f"layout:      {self.head} ({self.summary})",
            f"task:        {self.task}",
            f"input:       {self.input.describe()} {self.input_layout}",
            f"imgsz:       {self.imgsz[0]}x{self.imgsz[1]}"
            + (" (dynamic: stride-multiple letterbox)" if self.dynamic_hw else ""),
            f"preprocess:  {self.preprocess.describe()}",
            f"batch:       {batch}",
            f"stride:      {self.stride}",
            f"classes:     {self.num_classes} ({', '.join(self.names[:6])}{', ...' if self.num_classes > 6 else ''})",
            f"defaults:    conf {d.conf:g}, iou {d.iou:g}, max_det {d.max_det}, nms {d.nms}",
        ]
        describe = getattr(self.layout, "describe", None)
        roles: dict[int, str] = {}
        if describe is not None:
            extra, roles = describe()
            lines.extend(extra)
        for i, o in enumerate(self.outputs):
            lines.append(f"output {i}:    {o.describe()} ({roles.get(i, 'unused')})")
        return "\n".join(lines)


def literal(text: str | None) -> Any:
    """A Python literal from a metadata string (Ultralytics writes dicts and lists this way), else None."""
    if text is None:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


MAX_INPUT_SIDE = 8192  # pixels: larger "sizes" in metadata are corrupt, and would allocate gigabytes
MAX_STRIDE = 256
MAX_CLASSES = 1 << 16  # LVIS has 1203: more is a corrupt shape, and would build millions of names


def meta_int(path: str, meta: Mapping[str, str], key: str, default: int, high: int) -> int:
    """An integer metadata field in 1..high, or a ModelError naming the file, the key and the value."""
    if key not in meta:
        return default
    value = literal(meta[key])
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ModelError(f"{path}: metadata {key}={meta[key]!r} is not an integer in 1..{high}")
    return value


def size_pair(value: Any) -> tuple[int, int] | None:
    """(height, width) from an int or a pair of ints within 1..MAX_INPUT_SIDE, else None."""
    pair = (value, value) if isinstance(value, int) else value
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return None
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_INPUT_SIDE for v in pair):
        return None
    return int(pair[0]), int(pair[1])


def names_from_metadata(meta: Mapping[str, str]) -> tuple[str, ...] | None:
    """Class names from a ``names`` metadata entry (a dict by index or a list), else None."""
    names = literal(meta.get("names"))
    if isinstance(names, dict) and names and all(isinstance(k, int) for k in names):
        return tuple(str(names[k]) for k in sorted(names))
    if isinstance(names, (list, tuple)) and names:
        return tuple(str(n) for n in names)
    return None


def unsupported(path: str, rt: Runtime, why: str, layouts: str) -> ModelError:
    """A ModelError saying why a model cannot be read, listing its inputs and outputs and ``layouts``."""
    ins = "; ".join(t.describe() for t in rt.inputs) or "none"
    outs = "; ".join(t.describe() for t in rt.outputs) or "none"
    return ModelError(f"{path}: {why}.\n  found inputs: {ins}\n  found outputs: {outs}\n{layouts}".rstrip())


@dataclass(frozen=True)
class LoadContext:
    """What a family's detector sees of a model: its tensors and metadata, files beside it, and the
    user's overrides. ``Family.detect`` reads it and returns a ``Layout`` or None (not this family).

    Attributes:
        path: the model file (for messages).
        runtime: the loaded runtime (its ``outputs``, ``metadata``; ``run`` for a probe).
        input: the image input, and its ``input_layout`` and ``input_hw`` (None where dynamic).
        sidecars: parsed JSON files found with the model (MMDeploy: ``pipeline``, ``deploy``, ``detail``).
        names: class names the user passed, if any.
        imgsz: input size the user asked for (dynamic-size models), if any.
        options: family-specific load options (``edgeseg.load(..., options={...})``).
        layouts: every supported layout, for error messages.
    """

    path: str
    runtime: Runtime
    input: TensorInfo
    input_layout: str
    input_hw: tuple[int | None, int | None]
    sidecars: Mapping[str, Any] = field(default_factory=dict)
    names: tuple[str, ...] | None = None
    imgsz: int | Sequence[int] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    layouts: str = ""

    @property
    def outputs(self) -> list[TensorInfo]:
        """The model's outputs."""
        return list(self.runtime.outputs)

    @property
    def metadata(self) -> Mapping[str, str]:
        """The model file's metadata."""
        return self.runtime.metadata

    def unsupported(self, why: str) -> ModelError:
        """A ModelError saying why, listing the inputs and outputs found and every supported layout."""
        return unsupported(self.path, self.runtime, why, self.layouts)

    def check_output_dtypes(self, indices: Sequence[int]) -> None:
        """Raise unless these outputs are float32, or int8/uint8 with their quantization."""
        for i in indices:
            o = self.runtime.outputs[i]
            if o.dtype not in (np.float32, np.int8, np.uint8) or (o.dtype != np.float32 and o.scale is None):
                raise self.unsupported(f"output {o.name} is {np.dtype(o.dtype).name} without usable quantization")

    def input_size(self, stride: int, default: tuple[int, int] | None = None) -> tuple[int, int]:
        """The model input (height, width): the user's ``imgsz`` (a stride multiple; dynamic models only),
        else the fixed size, else the metadata's ``imgsz``, else ``default``, else 640x640."""
        h, w = self.input_hw
        if self.imgsz is not None:
            size = size_pair(self.imgsz)
            if size is None or any(v % stride for v in size):
                raise ValueError(
                    f"imgsz must be a positive multiple of the stride {stride} up to {MAX_INPUT_SIDE} (or a pair), "
                    f"got {self.imgsz!r}"
                )
            if h is not None and size != (h, w):
                raise ValueError(
                    f"this model has a fixed {h}x{w} input; imgsz={self.imgsz!r} needs a dynamic-size export"
                )
            return size
        if h is not None and w is not None:
            return int(h), int(w)
        if "imgsz" in self.metadata:
            size = size_pair(literal(self.metadata["imgsz"]))
            if size is None:
                raise ModelError(
                    f"{self.path}: metadata imgsz={self.metadata['imgsz']!r} is not a size (an int or [height, width], "
                    f"1..{MAX_INPUT_SIDE}); pass imgsz= to edgeseg.load"
                )
            return size
        return default if default is not None else (640, 640)
