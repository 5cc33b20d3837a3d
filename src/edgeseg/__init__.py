"""edgeseg: fast instance segmentation on edge devices.

>>> import edgeseg
>>> model = edgeseg.load("yolov8n-seg.onnx")            # doctest: +SKIP
>>> result = model("image.jpg", conf=0.25)              # doctest: +SKIP
>>> result.boxes, result.scores, result.labels, result.masks.rle()  # doctest: +SKIP
"""

from __future__ import annotations

from .errors import DatasetError, ImageError, ModelError
from .masks import InstanceMasks
from .model import Model, load
from .result import Result
from .spec import ModelSpec

__version__ = "0.1.0"
__all__ = [
    "DatasetError",
    "ImageError",
    "InstanceMasks",
    "Model",
    "ModelError",
    "ModelSpec",
    "Result",
    "__version__",
    "load",
]
