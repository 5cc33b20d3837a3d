"""A built-in test scene, so benchmarks and health checks need no image file."""

from __future__ import annotations

import cv2
import numpy as np


def synthetic_image(height: int, width: int) -> np.ndarray:
    """A deterministic BGR scene (gradient background, a few shapes) of the given size."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / max(width, 1) * 255, y / max(height, 1) * 255, np.full_like(x, 128)], axis=-1)
    image = image.astype(np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(6):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(max(2, min(height, width) // 20), max(3, min(height, width) // 6)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, (cx, cy), r, color, -1)
        cv2.rectangle(image, (cx - r, cy + r), (cx + r // 2, cy + 2 * r), color[::-1], -1)
    return image
