"""Result: the instances found in one image, in original-image pixels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Union

import numpy as np

from .coco import COCO80_TO_91, is_coco80
from .masks import InstanceMasks

CategoryMap = Union[Mapping[int, int], Sequence[int]]


@dataclass
class Result:
    """Instances of one image.

    Attributes:
        boxes: (N, 4) float32 ``x1, y1, x2, y2`` in original image pixels, clipped to the image.
        scores: (N,) float32 confidence, descending.
        class_ids: (N,) int32 class index into ``names``.
        names: the model's class names, by class index.
        masks: the N masks, each cropped to its box (see ``InstanceMasks``).
        image_shape: ``(height, width)`` of the original image.
        timings: milliseconds spent per stage: ``preprocess``, ``inference``, ``postprocess``.
        path: the image file, when the input was a path.
        frame_index: position of the frame in its stream (0-based; ``model.stream()`` only).
        timestamp: seconds: the source's presentation time for files and folders, the capture time
            (``time.time()``) for live sources (``model.stream()`` only).
        image: the BGR frame the result was computed on (``model.stream()`` only).
        track_ids: (N,) int64 id of each instance's track (positive, stable across frames) or -1 for an
            instance not in a confirmed track; None when not tracked.
        track_classes: (N,) int32 class index each instance's track has been seen as most often (-1 where
            ``track_ids`` is -1); None when not tracked. Counters count by it, so one frame's class flicker
            does not move a part to another class.
        counters: each line or zone counter's running totals after this frame, by counter name (see
            ``model.stream(counters=...)``); None without counters.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    names: tuple[str, ...]
    masks: InstanceMasks
    image_shape: tuple[int, int]
    timings: dict[str, float] = field(default_factory=dict)
    path: Path | None = None
    frame_index: int | None = None
    timestamp: float | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    track_ids: np.ndarray | None = None
    track_classes: np.ndarray | None = None
    counters: dict[str, dict] | None = None

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        counts = self.counts()
        summary = ", ".join(f"{n} {name}" for name, n in counts.items()) or "no instances"
        return f"Result({summary}; image {self.image_shape[1]}x{self.image_shape[0]})"

    def select(self, index: np.ndarray) -> Result:
        """A new Result with the instances at ``index`` (ints or a boolean mask), in that order."""
        idx = np.arange(len(self))[index]
        return replace(
            self,
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            class_ids=self.class_ids[idx],
            masks=self.masks.select(idx),
            track_ids=None if self.track_ids is None else self.track_ids[idx],
            track_classes=None if self.track_classes is None else self.track_classes[idx],
        )

    @property
    def labels(self) -> list[str]:
        """Class name of each instance."""
        return [self.names[int(c)] for c in self.class_ids]

    def counts(self) -> dict[str, int]:
        """Number of instances per class name, most frequent first."""
        names, n = np.unique(self.class_ids, return_counts=True)
        pairs = sorted(zip((self.names[int(c)] for c in names), n.tolist()), key=lambda p: -p[1])
        return dict(pairs)

    def to_coco(self, image_id: int, category_map: CategoryMap | None = None) -> list[dict]:
        """COCO results-format dicts (bbox ``[x, y, w, h]``, score, RLE segmentation).

        Args:
            image_id: the COCO image id.
            category_map: category id of each class index (a dict or a sequence). Default: COCO's
                91-id scheme for models with the 80 COCO classes, else the class index itself.
        """
        if category_map is None:
            category_map = COCO80_TO_91 if is_coco80(self.names) else range(len(self.names))
        rles = self.masks.rle()
        out = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_map[int(self.class_ids[i])]),
                    "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                    "score": round(float(self.scores[i]), 5),
                    "segmentation": rles[i],
                }
            )
        return out

    def draw(self, image: np.ndarray, alpha: float = 0.45, labels: bool = True) -> np.ndarray:
        """A copy of the BGR ``image`` with masks, boxes and labels drawn on it."""
        from .draw import draw_result

        return draw_result(image, self, alpha=alpha, labels=labels)
