"""InstanceMasks: per-instance masks kept cropped to their boxes at original image resolution.

Three hundred full-size masks of a 12 MP frame are 3.6 GB as bool; cropped to their boxes they are
usually a few MB. Dense stacks, COCO RLE and polygons are computed on request.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from . import _core


class InstanceMasks:
    """Binary (and optionally soft) masks of N instances, each stored as the crop of its box.

    Crops are bit-packed by row (8 pixels a byte), so 300 masks of a 12 MP frame stay small.

    Attributes:
        rects: (N, 4) int32 ``x0, y0, width, height`` of each crop in image pixels.
        offsets: (N + 1,) int64 start of each crop in ``data``.
        data: the packed crops: a crop of width w and height h takes ``ceil(w / 8) * h`` bytes,
            pixel x of a row in bit ``x % 8`` (lowest first) of byte ``x // 8``.
        probabilities: flat float32 probabilities of every crop pixel, row-major, or None unless
            soft masks were requested.
        image_shape: ``(height, width)`` of the image the masks belong to.

    >>> import numpy as np
    >>> m = InstanceMasks.from_dense(np.array([[[0, 1, 1], [0, 1, 0]]], dtype=bool))
    >>> len(m), m.rects.tolist(), m.areas().tolist()
    (1, [[1, 0, 2, 2]], [3])
    >>> m[0].tolist()
    [[1, 1], [1, 0]]
    >>> m.dense().astype(int).tolist()
    [[[0, 1, 1], [0, 1, 0]]]
    """

    def __init__(
        self,
        rects: np.ndarray,
        offsets: np.ndarray,
        data: np.ndarray,
        image_shape: tuple[int, int],
        probabilities: np.ndarray | None = None,
        areas: np.ndarray | None = None,
    ) -> None:
        self.rects = np.asarray(rects, dtype=np.int32).reshape(-1, 4)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.data = np.asarray(data, dtype=np.uint8)
        self.probabilities = probabilities
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self._areas = None if areas is None else np.asarray(areas, dtype=np.int64)
        if len(self.offsets) != len(self.rects) + 1:
            raise ValueError("offsets must have one entry more than rects")
        sizes = (self.rects[:, 2].astype(np.int64) + 7) // 8 * self.rects[:, 3]
        if not np.array_equal(np.diff(self.offsets), sizes) or (len(sizes) and self.offsets[-1] > self.data.size):
            raise ValueError("offsets do not match the bit-packed crop sizes of rects")

    @classmethod
    def empty(cls, image_shape: tuple[int, int]) -> InstanceMasks:
        """No masks, for an image of ``image_shape``."""
        return cls(np.zeros((0, 4), np.int32), np.zeros(1, np.int64), np.zeros(0, np.uint8), image_shape)

    @classmethod
    def from_crops(cls, rects: np.ndarray, crops: list[np.ndarray], image_shape: tuple[int, int]) -> InstanceMasks:
        """Build from per-instance (height, width) crops placed at ``rects`` (x0, y0, width, height)."""
        rects = np.asarray(rects, np.int32).reshape(-1, 4)
        packed = []
        for (_, _, w, h), crop in zip(rects.tolist(), crops):
            crop = np.asarray(crop).astype(bool).reshape(h, w)
            packed.append(np.packbits(crop, axis=1, bitorder="little").ravel())
        offsets = np.concatenate([[0], np.cumsum([p.size for p in packed])]).astype(np.int64)
        data = np.concatenate(packed) if packed else np.zeros(0, np.uint8)
        return cls(rects, offsets, data, image_shape)

    @classmethod
    def from_dense(cls, masks: np.ndarray) -> InstanceMasks:
        """Build from an (N, H, W) stack, cropping each mask to the bounding box of its pixels."""
        masks = np.asarray(masks).astype(bool)
        if masks.ndim != 3:
            raise ValueError(f"expected an (N, H, W) mask stack, got shape {masks.shape}")
        rects, crops = [], []
        for m in masks:
            ys, xs = np.nonzero(m)
            if len(xs) == 0:
                rects.append((0, 0, 0, 0))
                crops.append(np.zeros((0, 0), bool))
                continue
            x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
            rects.append((x0, y0, x1 - x0, y1 - y0))
            crops.append(m[y0:y1, x0:x1])
        return cls.from_crops(np.array(rects, np.int32).reshape(-1, 4), crops, masks.shape[1:])

    def __len__(self) -> int:
        return len(self.rects)

    def __getitem__(self, i: int) -> np.ndarray:
        """The (height, width) uint8 0/1 crop of mask ``i`` (unpacked); it sits at ``rects[i][:2]``."""
        _, _, w, h = (int(v) for v in self.rects[i])
        packed = self.data[self.offsets[i] : self.offsets[i + 1]].reshape(h, (w + 7) // 8)
        return np.unpackbits(packed, axis=1, count=w, bitorder="little")

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        return f"InstanceMasks(n={len(self)}, image_shape={self.image_shape}, nbytes={self.nbytes})"

    @property
    def nbytes(self) -> int:
        """Memory held by the crops."""
        extra = 0 if self.probabilities is None else self.probabilities.nbytes
        return int(self.data.nbytes + self.rects.nbytes + self.offsets.nbytes + extra)

    def areas(self) -> np.ndarray:
        """(N,) int64 pixel count of each mask."""
        if self._areas is None:
            self._areas = np.array([int(self[i].sum()) for i in range(len(self))], dtype=np.int64)
        return self._areas

    def soft(self, i: int) -> np.ndarray:
        """The (height, width) float32 probability crop of mask ``i`` (requires soft masks)."""
        if self.probabilities is None:
            raise ValueError("soft masks were not computed: call the model with soft_masks=True")
        sizes = self.rects[:, 2].astype(np.int64) * self.rects[:, 3]
        start = int(sizes[:i].sum())
        _, _, w, h = (int(v) for v in self.rects[i])
        return self.probabilities[start : start + w * h].reshape(h, w)

    def dense(self) -> np.ndarray:
        """(N, H, W) bool full-image masks. Memory grows with N x H x W: prefer crops or ``rle()``."""
        out = np.zeros((len(self), *self.image_shape), dtype=bool)
        for i, (x0, y0, w, h) in enumerate(self.rects.tolist()):
            out[i, y0 : y0 + h, x0 : x0 + w] = self[i]
        return out

    def rle(self) -> list[dict]:
        """COCO RLE dicts (``{"size": [H, W], "counts": str}``) that pycocotools decodes identically."""
        if len(self) == 0:
            return []
        counts = _core.rle_encode(self.data, self.offsets, self.rects, self.image_shape)
        size = list(self.image_shape)
        return [{"size": size, "counts": c.decode("ascii")} for c in counts]

    def polygons(self, min_points: int = 3) -> list[list[np.ndarray]]:
        """Outer contours of each mask as lists of (K, 2) float32 ``x, y`` polygons in image pixels.

        A mask made of several blobs gives several polygons; contours with fewer than
        ``min_points`` points are dropped (COCO needs at least 3).
        """
        out: list[list[np.ndarray]] = []
        for i, (x0, y0, _, _) in enumerate(self.rects.tolist()):
            crop = self[i]
            if crop.size == 0:
                out.append([])
                continue
            padded = cv2.copyMakeBorder(crop, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
            contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            shift = np.array([x0 - 1, y0 - 1], dtype=np.float32)
            out.append([c.reshape(-1, 2).astype(np.float32) + shift for c in contours if len(c) >= min_points])
        return out

    def select(self, index: np.ndarray) -> InstanceMasks:
        """A new InstanceMasks with the masks at ``index`` (ints or a boolean mask), in that order."""
        idx = np.arange(len(self))[index]
        crops = [self.data[self.offsets[i] : self.offsets[i + 1]] for i in idx]
        offsets = np.concatenate([[0], np.cumsum([c.size for c in crops])]).astype(np.int64)
        data = np.concatenate(crops) if crops else np.zeros(0, np.uint8)
        probs = None
        if self.probabilities is not None:
            probs = np.concatenate([self.soft(int(i)).ravel() for i in idx]) if len(idx) else np.zeros(0, np.float32)
        areas = None if self._areas is None else self._areas[idx]
        return InstanceMasks(self.rects[idx], offsets, data, self.image_shape, probs, areas)
