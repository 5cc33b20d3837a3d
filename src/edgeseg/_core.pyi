"""Type stubs of ``edgeseg._core``, the pybind11 bindings of the C++ core (csrc/bindings.cpp).

Every function validates its arguments and raises ``ValueError`` (``CoreValueError``) with a message for the end
user; arrays may come in any dtype-compatible layout and are never modified. Results are fresh numpy arrays.
"""

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

_Quant = tuple[float, int]  # (scale, zero_point): real = (q - zero_point) * scale
_Pair = tuple[int, int] | Sequence[int]

class CoreValueError(ValueError):
    """A core argument is out of range, of the wrong shape or dtype, or inconsistent with another."""

class Detections(NamedTuple):
    """Decoded detections in model-input pixels by descending score."""

    boxes: npt.NDArray[np.float32]  # (N, 4) x1 y1 x2 y2
    scores: npt.NDArray[np.float32]  # (N,)
    class_ids: npt.NDArray[np.int32]  # (N,)
    coefficients: npt.NDArray[np.float32]  # (N, C) mask coefficients

class MaskSet(NamedTuple):
    """Box-cropped bit-packed masks (row-major crops, ceil(w / 8) bytes a row, pixel x in bit x % 8)."""

    keep: npt.NDArray[np.int64]  # (K,) indices of the detections that have a mask
    rects: npt.NDArray[np.int32]  # (K, 4) x0 y0 w h in image pixels
    offsets: npt.NDArray[np.int64]  # (K + 1,) start of each crop in bits
    bits: npt.NDArray[np.uint8]
    probs: npt.NDArray[np.float32] | None  # float crops (soft masks only)
    areas: npt.NDArray[np.int64]  # (K,) pixels set

class Letterbox:
    """How a source image of (src_h, src_w) sits in a model input of (dst_h, dst_w): resized to (new_h, new_w)
    and padded by (pad_top, pad_left), as its ``resize`` mode rounds. Made by ``make_letterbox``; read-only."""

    def __init__(self, *args: Any) -> None: ...
    @property
    def src_h(self) -> int: ...
    @property
    def src_w(self) -> int: ...
    @property
    def dst_h(self) -> int: ...
    @property
    def dst_w(self) -> int: ...
    @property
    def new_h(self) -> int: ...
    @property
    def new_w(self) -> int: ...
    @property
    def pad_top(self) -> int: ...
    @property
    def pad_left(self) -> int: ...
    @property
    def resize(self) -> Literal["letterbox", "keep_ratio", "stretch"]: ...

def make_letterbox(
    src_h: int, src_w: int, dst_h: int, dst_w: int, resize: Literal["letterbox", "keep_ratio", "stretch"] = "letterbox"
) -> Letterbox:
    """Where a (src_h, src_w) image sits in a (dst_h, dst_w) input: ``"letterbox"`` centred with Ultralytics'
    rounding, ``"keep_ratio"`` top-left with mmcv's (``int(x + 0.5)``), ``"stretch"`` filling the input."""

def unletterbox_boxes(boxes: npt.ArrayLike, letterbox: Letterbox) -> npt.NDArray[np.float32]:
    """(N, 4) x1 y1 x2 y2 boxes from model-input pixels back to source pixels, clipped to the source image."""

def decode_yolo(
    prediction: npt.ArrayLike,
    num_classes: int,
    conf: float,
    iou: float,
    max_det: int,
    pre_nms_topk: int,
    agnostic: bool,
    class_allowed: npt.ArrayLike | None = None,
    quant: _Quant | None = None,
    box_scale: tuple[float, float] = (1.0, 1.0),
) -> Detections:
    """Raw YOLOv8/YOLO11-seg head (features x anchors) -> Detections after the score threshold and NMS, by
    descending score."""

def decode_yolo_e2e(
    rows: npt.ArrayLike,
    num_classes: int,
    conf: float,
    max_det: int,
    class_allowed: npt.ArrayLike | None = None,
    quant: _Quant | None = None,
    box_scale: tuple[float, float] = (1.0, 1.0),
) -> Detections:
    """End-to-end head rows (x1 y1 x2 y2 score class coefficients) -> Detections, as ``decode_yolo``."""

def nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike | None = None,
    iou: float = 0.7,
    max_det: int = 300,
    agnostic: bool = False,
) -> npt.NDArray[np.int64]:
    """Greedy NMS: indices of the kept boxes by descending score (ties: lower index first)."""

def assemble_masks(
    prototypes: npt.ArrayLike,
    coefficients: npt.ArrayLike,
    boxes: npt.ArrayLike,
    input_hw: _Pair,
    image_hw: _Pair,
    soft: bool = False,
    drop_empty: bool = True,
    quant: _Quant | None = None,
) -> MaskSet:
    """Masks of the detections cropped to their boxes at image resolution and bit-packed by row (a MaskSet)."""

def rle_encode(bits: npt.ArrayLike, offsets: npt.ArrayLike, rects: npt.ArrayLike, image_hw: _Pair) -> list[bytes]:
    """COCO compressed RLE strings of bit-packed crops placed in an image of ``image_hw``."""

def linear_assignment(cost: npt.ArrayLike, max_cost: float) -> npt.NDArray[np.int64]:
    """Per row the column matched at minimum total cost, or -1; pairs costing more than max_cost never match."""

def mask_iou(
    rects_a: npt.ArrayLike,
    offsets_a: npt.ArrayLike,
    bits_a: npt.ArrayLike,
    rects_b: npt.ArrayLike,
    offsets_b: npt.ArrayLike,
    bits_b: npt.ArrayLike,
    shifts: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """(Na, Nb) IoU of every pair of two sets of bit-packed crops, the first set moved by ``shifts`` (Na, 2)."""

class Tracker:
    """ByteTrack-style tracker of the C++ core (see ``edgeseg.track.Tracker``); one per stream."""

    def __init__(self, **options: float | int | bool) -> None: ...
    def update(
        self,
        boxes: npt.ArrayLike,
        scores: npt.ArrayLike,
        class_ids: npt.ArrayLike | None = None,
        mask_rects: npt.ArrayLike | None = None,
        mask_offsets: npt.ArrayLike | None = None,
        mask_bits: npt.ArrayLike | None = None,
        warp: npt.ArrayLike | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32]]:
        """One frame: (track ids (N,), voted classes (N,)), -1 where a detection is in no confirmed track."""
    def tracks(self) -> dict[str, npt.NDArray[Any]]:
        """Confirmed tracks (tracked and lost): ids, boxes, scores, class_ids, hits, age, time_since_update, lost."""
    def reset(self) -> None: ...
    @property
    def frame(self) -> int: ...
    @property
    def options(self) -> dict[str, float | int | bool]: ...

# --- nms variants ---
# Fast NMS (YOLACT), Matrix NMS (SOLOv2 / mmdet) over boxes or bit-packed masks, mask-IoU NMS
# (csrc/include/edgeseg/nms_variants.hpp). Candidates are ordered by descending score, ties by
# lower index; IoU is float32, 0 where the union is not positive (degenerate boxes, empty masks).

class NmsResult(NamedTuple):
    """Candidates kept by an NMS variant, best first."""

    keep: npt.NDArray[np.int64]  # (K,) indices into the input candidates (rows of boxes / masks)
    scores: npt.NDArray[np.float32]  # (K,) their scores (Matrix NMS: decayed)
    class_ids: npt.NDArray[np.int32]  # (K,) their classes (a score matrix's column)

def fast_nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike | None = None,
    iou: float = 0.5,
    top_k: int = 200,
    max_det: int = 100,
    agnostic: bool = False,
    conf: float | None = None,
) -> NmsResult:
    """YOLACT's Fast NMS: per class the ``top_k`` best candidates; one is kept when its largest IoU with any
    higher-scored candidate of its class is <= ``iou``; then the best ``max_det`` over all classes (-1: all).

    ``scores`` is (N,) with ``class_ids`` (N,) (None: one class), or an (N, C) score matrix (``class_ids``
    None) whose columns are separate candidate sets, as YOLACT's per-class scores. ``agnostic``: YOLACT's
    cross-class mode (a matrix row's best class). ``conf``: YOLACT's second threshold (scores > conf)."""

def matrix_nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike | None = None,
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 2.0,
    pre_topk: int = -1,
    max_det: int = -1,
    filter_thr: float = -1.0,
    agnostic: bool = False,
) -> NmsResult:
    """SOLOv2's Matrix NMS (mmdet ``mask_matrix_nms``) by box IoU: scores decayed by
    min_i f(iou_ij) / f(compensate_i) over higher-scored same-class candidates; decayed scores < ``filter_thr``
    dropped when it is > 0; best ``max_det`` (-1: all). ``pre_topk``: candidates entering (-1: all)."""

def mask_matrix_nms(
    rects: npt.ArrayLike,
    offsets: npt.ArrayLike,
    bits: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike | None = None,
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 2.0,
    pre_topk: int = -1,
    max_det: int = -1,
    filter_thr: float = -1.0,
    agnostic: bool = False,
) -> NmsResult:
    """Matrix NMS as ``matrix_nms`` by the IoU of bit-packed crops (a MaskSet's rects, offsets, bits)."""

def mask_nms(
    rects: npt.ArrayLike,
    offsets: npt.ArrayLike,
    bits: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike | None = None,
    iou: float = 0.5,
    max_det: int = 300,
    agnostic: bool = False,
) -> NmsResult:
    """Greedy NMS by the IoU of bit-packed crops: suppressed when the mask IoU with a kept mask of the same
    class (any class when ``agnostic``) is > ``iou``; at most ``max_det`` kept (-1: all)."""

def pairwise_mask_iou(rects: npt.ArrayLike, offsets: npt.ArrayLike, bits: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """(N, N) float32 IoU of every pair of N bit-packed crops (1 on the diagonal, 0 for empty masks)."""
