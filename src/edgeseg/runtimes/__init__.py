"""Inference runtimes behind one protocol; ``open_runtime`` picks one by file type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelError
from .base import Runtime, TensorInfo

__all__ = ["Runtime", "TensorInfo", "open_runtime"]


def open_runtime(path: Path, **options: Any) -> Runtime:
    """Open ``path`` with the runtime that reads its format; ``options`` go to that runtime."""
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        from .onnxruntime import OnnxRuntime

        return OnnxRuntime(path, **options)
    if suffix == ".tflite":
        from .litert import LiteRtRuntime

        return LiteRtRuntime(path, **options)
    raise ModelError(
        f"{path}: unsupported model format {suffix or '(no extension)'!r}; edgeseg reads .onnx and .tflite files"
    )
