"""Drawing results on images."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from .result import Result


def class_color(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour for a class (golden-ratio hue steps)."""
    hue = int((class_id * 0.618033988749895 % 1.0) * 180)
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_result(image: np.ndarray, result: Result, alpha: float = 0.45, labels: bool = True) -> np.ndarray:
    """Blend each mask in its class colour, then draw its box and ``name score`` label."""
    if image.shape[:2] != tuple(result.image_shape):
        raise ValueError(f"image is {image.shape[:2]} but the result belongs to an image of {result.image_shape}")
    out = image.copy()
    for i, (x0, y0, w, h) in enumerate(result.masks.rects.tolist()):
        if w == 0 or h == 0:
            continue
        color = np.array(class_color(int(result.class_ids[i])), dtype=np.float32)
        region = out[y0 : y0 + h, x0 : x0 + w]
        on = result.masks[i].astype(bool)
        region[on] = (region[on] * (1 - alpha) + color * alpha).astype(np.uint8)
    thickness = max(1, round(sum(image.shape[:2]) / 600))
    for i, box in enumerate(result.boxes):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        color = class_color(int(result.class_ids[i]))
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        if labels:
            text = f"{result.names[int(result.class_ids[i])]} {float(result.scores[i]):.2f}"
            if result.track_ids is not None and result.track_ids[i] > 0:
                text = f"#{int(result.track_ids[i])} {text}"
            scale = thickness / 3
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, thickness // 2))
            top = max(y1 - th - base, 0)
            cv2.rectangle(out, (x1, top), (x1 + tw, top + th + base), color, -1)
            cv2.putText(
                out,
                text,
                (x1, top + th),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                (0, 0, 0),
                max(1, thickness // 2),
                cv2.LINE_AA,
            )
    return out


class Trails:
    """Recent box centres of each track, for drawing short trails behind moving instances.

    Memory is bounded: each track keeps its last ``length`` points and tracks unseen for ``length`` frames
    are forgotten.
    """

    def __init__(self, length: int = 30) -> None:
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"trail length must be a positive int, got {length!r}")
        self.length = length
        self._points: dict[int, deque[tuple[int, int]]] = {}
        self._last_seen: dict[int, int] = {}
        self._frame = 0

    def update(self, result: Result) -> None:
        """Add this frame's centres of tracked instances."""
        self._frame += 1
        if result.track_ids is not None:
            for tid, box in zip(result.track_ids.tolist(), result.boxes.tolist()):
                if tid > 0:
                    point = (round((box[0] + box[2]) / 2), round((box[1] + box[3]) / 2))
                    self._points.setdefault(tid, deque(maxlen=self.length)).append(point)
                    self._last_seen[tid] = self._frame
        for tid in [t for t, seen in self._last_seen.items() if self._frame - seen >= self.length]:
            del self._points[tid], self._last_seen[tid]

    def draw(self, image: np.ndarray, result: Result) -> None:
        """Draw the trails of the tracks in ``result`` on ``image`` (in place), in their classes' colours."""
        if result.track_ids is None:
            return
        thickness = max(1, round(sum(image.shape[:2]) / 600))
        classes = result.track_classes if result.track_classes is not None else result.class_ids
        for tid, cls in zip(result.track_ids.tolist(), classes.tolist()):
            points = self._points.get(tid)
            if points is not None and len(points) > 1:
                pts = np.array(points, dtype=np.int32).reshape(-1, 1, 2)
                cv2.polylines(image, [pts], False, class_color(int(cls)), thickness, cv2.LINE_AA)


def draw_line(image: np.ndarray, line: Sequence[float], text: str = "") -> None:
    """Draw a counting line (x1, y1, x2, y2) and an optional caption on ``image`` in place."""
    x1, y1, x2, y2 = (round(float(v)) for v in line)
    thickness = max(1, round(sum(image.shape[:2]) / 400))
    cv2.line(image, (x1, y1), (x2, y2), (255, 255, 255), thickness + 2, cv2.LINE_AA)
    cv2.line(image, (x1, y1), (x2, y2), (0, 0, 255), thickness, cv2.LINE_AA)
    if text:
        draw_caption(image, text, (x1 + 4, max(y1, y2) - 6 if y2 != y1 else y1 + 16))


def draw_zone(image: np.ndarray, polygon: np.ndarray, text: str = "") -> None:
    """Draw a counting zone (a (K, 2) polygon) and an optional caption on ``image`` in place."""
    pts = np.round(np.asarray(polygon, np.float64)).astype(np.int32).reshape(-1, 1, 2)
    thickness = max(1, round(sum(image.shape[:2]) / 400))
    cv2.polylines(image, [pts], True, (255, 255, 255), thickness + 2, cv2.LINE_AA)
    cv2.polylines(image, [pts], True, (255, 128, 0), thickness, cv2.LINE_AA)
    if text:
        x, y = pts[:, 0, 0].min(), pts[:, 0, 1].max()
        draw_caption(image, text, (int(x) + 4, int(y) - 6))


def draw_caption(image: np.ndarray, text: str, origin: tuple[int, int] = (6, 18)) -> None:
    """White text on a dark band at ``origin`` (bottom-left of the text), in place."""
    scale = max(0.4, sum(image.shape[:2]) / 1800)
    thickness = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = origin
    x = min(max(0, x), max(0, image.shape[1] - tw))
    y = min(max(th + base, y), image.shape[0] - base)
    cv2.rectangle(image, (x - 2, y - th - 2), (x + tw + 2, y + base), (0, 0, 0), -1)
    cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
