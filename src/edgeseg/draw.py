"""Drawing results on images."""

from __future__ import annotations

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
