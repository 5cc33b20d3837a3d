"""LiteRT (TensorFlow Lite) backend: ``ai-edge-litert``, or ``tflite_runtime`` where that is installed."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import ModelError
from .base import TensorInfo

DelegateSpec = Union[str, tuple[str, dict[str, Any]]]


def _interpreter_module() -> Any:
    try:
        from ai_edge_litert import interpreter

        return interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime import interpreter  # the predecessor; works only with numpy < 2

        return interpreter
    except ImportError as exc:
        raise ModelError(
            "running .tflite models needs LiteRT: pip install 'edgeseg[tflite]' (ai-edge-litert), "
            "or tflite-runtime on boards that ship it"
        ) from exc


class LiteRtRuntime:
    """A ``.tflite`` model in a LiteRT interpreter.

    Args:
        path: the ``.tflite`` file.
        threads: CPU threads for the interpreter (and XNNPACK).
        delegates: external delegates by library path, optionally ``(path, options)``, e.g.
            ``"libedgetpu.so.1"`` for a Coral Edge TPU or a vendor NPU delegate; tried in order.
        xnnpack: use the XNNPACK CPU delegate (default on; off falls back to the builtin kernels).

    An interpreter runs one inference at a time: concurrent calls on one model are serialized.
    """

    name = "litert"

    def __init__(
        self,
        path: Path,
        threads: int | None = None,
        delegates: Sequence[DelegateSpec] | None = None,
        xnnpack: bool = True,
    ) -> None:
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        mod = _interpreter_module()
        loaded, names = [], []
        for spec in delegates or []:
            lib, opts = (spec, None) if isinstance(spec, (str, Path)) else spec
            try:
                loaded.append(mod.load_delegate(str(lib), opts or {}))
            except (ValueError, OSError, RuntimeError) as exc:
                raise ModelError(
                    f"cannot load the LiteRT delegate {lib!r} ({exc}). Is the library installed and on the "
                    "library path (LD_LIBRARY_PATH), and does the device it drives exist?"
                ) from exc
            names.append(Path(str(lib)).name)
        resolver = mod.OpResolverType.AUTO if xnnpack else mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            self._interpreter = mod.Interpreter(
                model_path=str(path),
                num_threads=threads,
                experimental_delegates=loaded or None,
                experimental_op_resolver_type=resolver,
            )
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(
                f"{path}: LiteRT cannot load this file ({str(exc).strip()[:300]}). "
                "Is it a complete, valid .tflite model? Re-export or re-download it."
            ) from exc
        self._path = path
        self._threads = threads
        self._providers = [*names, *(["XNNPACK"] if xnnpack else []), "CPU"]
        self._lock = threading.Lock()
        self._in = self._interpreter.get_input_details()
        self._out = self._interpreter.get_output_details()
        self._inputs = [_info(d) for d in self._in]
        self._outputs = [_info(d) for d in self._out]

    @property
    def inputs(self) -> list[TensorInfo]:
        """The model's inputs, with their quantization."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        """The model's outputs, with their quantization."""
        return self._outputs

    @property
    def metadata(self) -> dict[str, str]:
        """TFLite exports carry no metadata edgeseg reads: class names fall back to COCO or ``class_<i>``."""
        return {}

    @property
    def providers(self) -> list[str]:
        """Delegates in use, then the CPU."""
        return list(self._providers)

    @property
    def threads(self) -> int | None:
        """Interpreter threads requested."""
        return self._threads

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the interpreter (one call at a time) and return copies of every output."""
        with self._lock:
            try:
                for detail in self._in:
                    tensor = feeds[detail["name"]]
                    if tuple(tensor.shape) != tuple(detail["shape"]):
                        self._interpreter.resize_tensor_input(detail["index"], tensor.shape)
                        self._interpreter.allocate_tensors()
                    self._interpreter.set_tensor(detail["index"], tensor)
                self._interpreter.invoke()
                return [self._interpreter.get_tensor(d["index"]) for d in self._out]
            except (RuntimeError, ValueError) as exc:
                if isinstance(exc, ModelError):
                    raise
                raise ModelError(f"{self._path}: LiteRT failed to run the model ({str(exc).strip()[:300]})") from exc


def _info(detail: dict[str, Any]) -> TensorInfo:
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(int(d) if d >= 0 else None for d in signature)
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantized = np.dtype(detail["dtype"]).kind in "iu" and scale > 0
    return TensorInfo(
        detail["name"],
        shape,
        np.dtype(detail["dtype"]),
        float(scale) if quantized else None,
        int(zero_point) if quantized else None,
    )
