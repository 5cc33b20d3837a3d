"""edgeseg: fast instance segmentation on edge devices.

>>> import edgeseg
>>> model = edgeseg.load("yolov8n-seg.onnx")            # doctest: +SKIP
>>> result = model("image.jpg", conf=0.25)              # doctest: +SKIP
>>> result.boxes, result.scores, result.labels, result.masks.rle()  # doctest: +SKIP
>>> for result in model.stream("belt.mp4"):                # doctest: +SKIP
...     result.track_ids                                    # stable ids across frames
"""

from __future__ import annotations

from .errors import DatasetError, ImageError, ModelError, SourceError
from .masks import InstanceMasks
from .model import Model, load
from .result import Result
from .spec import ModelSpec
from .stream import Stream, StreamStats
from .track import Track, Tracker, TrackerConfig

__version__ = "0.1.0"
__all__ = [
    "DatasetError",
    "ImageError",
    "InstanceMasks",
    "Model",
    "ModelError",
    "ModelSpec",
    "Result",
    "SourceError",
    "Stream",
    "StreamStats",
    "Track",
    "Tracker",
    "TrackerConfig",
    "__version__",
    "load",
]
