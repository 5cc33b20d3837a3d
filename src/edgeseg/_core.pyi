"""Type stubs of ``edgeseg._core``, the pybind11 bindings of the C++ core (csrc/bindings.cpp).

Every function validates its arguments and raises ``ValueError`` (``CoreValueError``) with a message for the end
user; arrays may come in any dtype-compatible layout and are never modified. Results are fresh numpy arrays.
"""

from collections.abc import Mapping, Sequence
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
    coefficients: npt.ArrayLike | None = None,
    coefficients_quant: _Quant | None = None,
    objectness: bool = False,
) -> Detections:
    """Raw YOLOv8/YOLO11-seg head (features x anchors) -> Detections after the score threshold and NMS, by
    descending score. ``coefficients``: the mask coefficients in a tensor of their own (coefficients x
    anchors). ``objectness``: an anchor-based YOLOv5 / YOLOv7-seg head, features = 4 box + objectness +
    classes + coefficients; anchors need objectness > conf and score objectness x best class probability."""

def decode_yolo_split(
    levels: list[dict[str, Any]],
    num_classes: int,
    conf: float,
    iou: float,
    max_det: int,
    pre_nms_topk: int,
    agnostic: bool,
    class_allowed: npt.ArrayLike | None = None,
) -> Detections:
    """Split YOLOv8/YOLO11-seg head: one dict per stride (``boxes`` DFL bins x cells, ``scores`` classes x cells,
    ``coefficients`` x cells, optional ``score_sum`` 1 x cells, ``grid_hw``, ``stride``, and ``<name>_quant``
    for quantized tensors) -> Detections as ``decode_yolo``."""

def decode_yolov5_split(
    levels: list[dict[str, Any]],
    num_classes: int,
    conf: float,
    iou: float,
    max_det: int,
    pre_nms_topk: int,
    agnostic: bool,
    class_allowed: npt.ArrayLike | None = None,
) -> Detections:
    """Anchor-based split head (YOLOv5-seg, Rockchip rknn_model_zoo): one dict per stride (``preds``
    anchors x (5 + classes) x cells, ``coefficients`` anchors x C x cells, ``grid_hw``, ``stride``, ``anchors``
    (w, h) pairs in input pixels, and ``<name>_quant`` for quantized tensors) -> Detections as ``decode_yolo``
    with ``objectness=True``; anchor ids level by level, ``a * cells + cell`` within a level."""

def decode_yolo_scored(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike,
    coefficients: npt.ArrayLike,
    num_classes: int,
    conf: float,
    iou: float,
    max_det: int,
    pre_nms_topk: int,
    agnostic: bool,
    class_allowed: npt.ArrayLike | None = None,
    boxes_quant: _Quant | None = None,
    scores_quant: _Quant | None = None,
    coefficients_quant: _Quant | None = None,
    box_scale: tuple[float, float] = (1.0, 1.0),
) -> Detections:
    """Scored head (boxes N x 4 x1 y1 x2 y2, best-class scores N, class ids N, coefficients N x C, as Qualcomm AI
    Hub exports) -> Detections as ``decode_yolo``."""

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

# --- paste (dets family: Mask R-CNN RoI masks and full-frame masks) ---

def paste_roi_masks(
    masks: npt.ArrayLike,
    rows: npt.ArrayLike,
    boxes: npt.ArrayLike,
    image_hw: _Pair,
    convention: str = "mmdet",
    threshold: float = 0.5,
    soft: bool = False,
) -> MaskSet:
    """Paste RoI masks ``masks[rows]`` (float32 (K, M, M) probabilities, strided views fine) into
    ``boxes`` (N, 4) x1 y1 x2 y2 in source pixels of an ``image_hw`` image, straight into box-cropped
    bit-packed crops (keep = 0..N-1, every detection keeps its place; a box of zero width pastes nothing).

    ``"mmdet"``: MMDetection's ``_do_paste_mask`` / the MMDeploy SDK (bilinear sampling at pixel
    centres, zeros outside the mask, over the box grown to [floor(x1) - 1, ceil(x2) + 1); set at
    >= threshold). ``"torchvision"``: ``paste_masks_in_image`` (one zero cell of padding, box scaled by
    (M + 2) / M and truncated, bilinear resize into it; set at > threshold).
    """

def crop_frame_masks(
    masks: npt.ArrayLike,
    rows: npt.ArrayLike,
    boxes: npt.ArrayLike,
    letterbox: Letterbox,
    threshold: float = 0.5,
    inclusive: bool = True,
    soft: bool = False,
) -> MaskSet:
    """Crop full-frame masks ``masks[rows]`` ((K, H, W) at the model input size: float32 probabilities,
    or uint8 / bool binary) to ``boxes`` (N, 4, source pixels) grown by one pixel, reading each source
    pixel's input pixel by nearest neighbour (MMDeploy's rescale). A box with x2 <= x1 or y2 <= y1 is
    replaced by its mask's extent. Probabilities are set at >= threshold (``inclusive``) or > threshold."""

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

# --- dynconv: RTMDet-Ins / CondInst point-prior heads with dynamic mask networks ---

class PointDetections(NamedTuple):
    """Point-prior detections in model-input pixels by descending score, with what their masks need."""

    boxes: npt.NDArray[np.float32]  # (N, 4) x1 y1 x2 y2, clamped to the input
    scores: npt.NDArray[np.float32]  # (N,) sigmoid scores
    class_ids: npt.NDArray[np.int32]  # (N,)
    params: npt.NDArray[np.float32]  # (N, P) mask-network parameters (weights of every layer, then biases)
    priors: npt.NDArray[np.float32]  # (N, 3) prior x, y (input pixels) and its level's stride

def decode_rtmdet(
    cls_scores: Sequence[npt.ArrayLike],
    bbox_preds: Sequence[npt.ArrayLike],
    kernel_preds: Sequence[npt.ArrayLike],
    strides: Sequence[int],
    conf: float,
    iou: float,
    max_det: int,
    nms_pre: int,
    agnostic: bool,
    class_allowed: npt.ArrayLike | None,
    input_hw: _Pair,
    offset: float = 0.0,
) -> PointDetections:
    """MMDetection's RTMDet-Ins predict_by_feat over float32 (C, h, w) maps per level: sigmoid scores of every
    (location, class) above conf, the nms_pre best per level, distance boxes (l, t, r, b) from the priors
    clamped to the input, degenerate boxes dropped, NMS, max_det."""

def dynamic_masks(
    mask_feat: npt.ArrayLike,
    params: npt.ArrayLike,
    priors: npt.ArrayLike,
    boxes: npt.ArrayLike,
    letterbox: Letterbox,
    feat_stride: int = 8,
    dyconv_channels: int = 8,
    num_dyconvs: int = 3,
    coord_offset: float = 0.0,
    coord_scale: float = 8.0,
    mask_threshold: float = 0.5,
    soft: bool = False,
    drop_empty: bool = True,
) -> MaskSet:
    """Each instance's mask from its dynamic 1x1 convolutions (ReLU between) over [relative x, y; mask_feat],
    computed only inside its box (image pixels) with mmdet's geometry (x feat_stride, then to
    ceil(input / scale), cut to the image), thresholded; keep_ratio letterboxes only."""

def dynconv_num_params(feat_channels: int, dyconv_channels: int = 8, num_dyconvs: int = 3) -> int:
    """Parameters per instance of the dynamic mask network (169 for 8 feature channels, 8 wide, 3 layers)."""

# --- solov2 ---

class Solov2Instances(NamedTuple):
    """SOLOv2 instances by descending score; boxes are each mask's extent in source pixels."""

    boxes: npt.NDArray[np.float32]  # (K, 4) x1 y1 x2 y2
    scores: npt.NDArray[np.float32]  # (K,)
    class_ids: npt.NDArray[np.int32]  # (K,)
    masks: MaskSet  # keep = 0..K-1

def decode_solov2(
    category_scores: Sequence[npt.ArrayLike],
    kernels: Sequence[npt.ArrayLike],
    mask_feature: npt.ArrayLike,
    strides: Sequence[float],
    letterbox: Letterbox,
    conf: float = 0.1,
    max_det: int = 100,
    *,
    mask_threshold: float = 0.5,
    filter_thr: float = 0.05,
    nms_pre: int = 500,
    cate_logits: bool = True,
    kernel: Literal["gaussian", "linear"] = "gaussian",
    sigma: float = 2.0,
    nms: Literal["matrix", "mask", "fast", "box"] = "matrix",
    iou: float = 0.5,
    agnostic: bool = False,
    mask_stride: int = 4,
    soft: bool = False,
    class_allowed: npt.ArrayLike | None = None,
) -> Solov2Instances:
    """SOLOv2 (MMDetection's SOLOV2Head.predict_by_feat + mask_matrix_nms): per level float32 category scores
    (C, S, S) (logits unless ``cate_logits`` is False) and kernels (E, S, S) (any strides: flattened [G, C] levels
    are views), the mask feature (E, h, w) and each level's stride (minimum mask area) -> instances with masks
    resized to the padded input (mask_feature x ``mask_stride``), cropped to the image, resized to the source and
    thresholded, box-cropped and bit-packed. ``nms``: Matrix NMS (``filter_thr``, ``kernel``, ``sigma``) or
    greedy by mask IoU, Fast NMS by mask IoU, greedy by box IoU (``iou``); ``nms_pre`` <= 0: no limit."""

# --- yolact ---
def decode_yolact(
    boxes: npt.ArrayLike,
    conf: npt.ArrayLike,
    coefficients: npt.ArrayLike,
    priors: npt.ArrayLike | None = None,
    conf_threshold: float = 0.05,
    iou: float = 0.5,
    top_k: int = 200,
    max_det: int = 100,
    cross_class: bool = False,
    fast: bool = True,
    class_allowed: npt.ArrayLike | None = None,
    boxes_quant: tuple[float, int] | None = None,
    conf_quant: tuple[float, int] | None = None,
    coefficients_quant: tuple[float, int] | None = None,
) -> Detections:
    """YOLACT's Detect for one image: ``boxes`` (N, 4) x1 y1 x2 y2 fractions of the input, or SSD offsets
    decoded against ``priors`` (N, 4) cx cy w h (variances 0.1, 0.2); ``conf`` (N, 1 + C) probabilities,
    background first; ``coefficients`` (N, K). Priors whose best class is > ``conf_threshold``, Fast NMS
    per class (``top_k`` each; ``cross_class``: one set; second threshold on), the ``max_det`` best;
    ``fast=False``: greedy NMS. Detections' boxes are fractions of the input, class ids 0-based."""

def yolact_masks(
    prototypes: npt.ArrayLike,
    coefficients: npt.ArrayLike,
    boxes: npt.ArrayLike,
    image_hw: tuple[int, int],
    soft: bool = False,
    drop_empty: bool = False,
    quant: tuple[float, int] | None = None,
) -> MaskSet:
    """YOLACT's masks: sigmoid(prototypes (K, h, w) . coefficients (N, K)) zeroed outside each box (fractions,
    widened by one prototype pixel), bilinear (half-pixel) to ``image_hw``, > 0.5; each crop covers what the
    box's prototype window reaches. ``soft`` adds the interpolated probabilities."""

# ---- the whole postprocess (postprocess.hpp) ----------------------------------------------------

class Instances(NamedTuple):
    """Instances of one image in source pixels by descending score (every one has a mask)."""

    boxes: npt.NDArray[np.float32]  # (N, 4) x1 y1 x2 y2
    scores: npt.NDArray[np.float32]  # (N,)
    class_ids: npt.NDArray[np.int32]  # (N,)
    masks: MaskSet  # N box-cropped bit-packed masks

class YoloLayout:
    """Which output of an Ultralytics-style YOLO segmentation export is which (``edgeseg::YoloLayout``).
    ``head``: "raw" (YOLOv8 / YOLO11 / YOLOv9), "e2e" (NMS in the graph) or "objectness" (YOLOv5 / YOLOv7)."""

    def __init__(
        self,
        *,
        head: str,
        num_classes: int,
        num_coeffs: int,
        detections: int,
        anchor_major: bool,
        prototypes: int,
        prototypes_nhwc: bool,
        boxes_normalized: bool,
    ) -> None: ...
    @property
    def head(self) -> str: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def num_coeffs(self) -> int: ...
    @property
    def detections(self) -> int: ...
    @property
    def anchor_major(self) -> bool: ...
    @property
    def prototypes(self) -> int: ...
    @property
    def prototypes_nhwc(self) -> bool: ...
    @property
    def boxes_normalized(self) -> bool: ...
    @property
    def names(self) -> list[str]: ...

class SplitLayout:
    """A YOLO head split for NPUs (``edgeseg::SplitLayout``). ``kind`` "dfl" (YOLOv8 / YOLO11 per stride: each level
    a dict of ``boxes``, ``scores``, ``coeffs`` and optional ``score_sum`` output indices, ``grid`` (h, w),
    ``stride``), "anchors" (YOLOv5 per stride: ``boxes`` = the predictions, ``coeffs``, ``anchors`` (w, h) pairs),
    "scored" (Qualcomm AI Hub: ``boxes``, ``scores``, ``classes``, ``coeffs`` per anchor) or "two_way" (EdgeFirst:
    ``boxes`` = [4 + classes, N], ``coeffs``; ``anchor_major``, ``boxes_normalized``)."""

    def __init__(
        self,
        *,
        kind: str,
        num_classes: int,
        levels: Sequence[Mapping[str, Any]] = (),
        levels_nhwc: bool = False,
        prototypes: int,
        prototypes_nhwc: bool,
        boxes: int | None = None,
        scores: int | None = None,
        classes: int | None = None,
        coeffs: int | None = None,
        anchor_major: bool = False,
        boxes_normalized: bool = False,
    ) -> None: ...
    @property
    def kind(self) -> str: ...
    @property
    def num_classes(self) -> int: ...
    @property
    def num_levels(self) -> int: ...
    @property
    def levels_nhwc(self) -> bool: ...
    @property
    def prototypes(self) -> int: ...
    @property
    def prototypes_nhwc(self) -> bool: ...
    @property
    def levels(self) -> list[dict[str, Any]]: ...
    @property
    def boxes(self) -> int: ...
    @property
    def scores(self) -> int: ...
    @property
    def classes(self) -> int: ...
    @property
    def coeffs(self) -> int: ...
    @property
    def anchor_major(self) -> bool: ...
    @property
    def boxes_normalized(self) -> bool: ...

class YolactLayout:
    """Which output of a YOLACT export is which (``edgeseg::YolactLayout``): decoded boxes or SSD offsets (against
    a ``priors_output`` or host ``priors`` (N, 4) cx cy w h), class probabilities (background first), coefficients,
    prototypes (NHWC as yolact's own, or NCHW)."""

    def __init__(
        self,
        *,
        boxes: int,
        boxes_decoded: bool,
        conf: int,
        coeffs: int,
        prototypes: int,
        priors_output: int | None = None,
        priors: npt.ArrayLike | None = None,
        prototypes_nhwc: bool = True,
        top_k: int = 200,
    ) -> None: ...
    @property
    def boxes(self) -> int: ...
    @property
    def boxes_decoded(self) -> bool: ...
    @property
    def conf(self) -> int: ...
    @property
    def coeffs(self) -> int: ...
    @property
    def prototypes(self) -> int: ...
    @property
    def priors_output(self) -> int: ...
    @property
    def prototypes_nhwc(self) -> bool: ...
    @property
    def top_k(self) -> int: ...
    @property
    def num_priors(self) -> int: ...

def postprocess_yolact(
    layout: YolactLayout,
    outputs: Sequence[npt.ArrayLike],
    quants: Sequence[_Quant | None],
    letterbox: Letterbox,
    options: Any,
) -> Instances:
    """The whole postprocess of one image of a YOLACT export (a priors output as the model returns it; ``nms``
    "fast" or "box"): decode, masks at prototype resolution cropped and resized, boxes to source pixels."""

class RtmdetLayout:
    """Which output of a raw RTMDet-Ins export is which (``edgeseg::RtmdetLayout``): per level class logits, box
    distances and kernels (output indices, finest first), their strides, the mask feature, the mask network."""

    def __init__(
        self,
        *,
        cls: Sequence[int],
        box: Sequence[int],
        kernel: Sequence[int],
        strides: Sequence[int],
        mask_feat: int,
        dyconv_channels: int = 8,
        num_dyconvs: int = 3,
    ) -> None: ...
    @property
    def cls(self) -> list[int]: ...
    @property
    def box(self) -> list[int]: ...
    @property
    def kernel(self) -> list[int]: ...
    @property
    def strides(self) -> list[int]: ...
    @property
    def mask_feat(self) -> int: ...
    @property
    def dyconv_channels(self) -> int: ...
    @property
    def num_dyconvs(self) -> int: ...

def postprocess_rtmdet(
    layout: RtmdetLayout,
    outputs: Sequence[npt.ArrayLike],
    quants: Sequence[_Quant | None],
    letterbox: Letterbox,
    options: Any,
) -> Instances:
    """The whole postprocess of one image of a raw RTMDet-Ins export (float32; ``nms`` "box")."""

class Solov2Layout:
    """Which output of a raw SOLOv2 export is which (``edgeseg::Solov2Layout``): per level category and kernel
    outputs, or one each when ``flat``; the mask feature; grids, strides and MMDetection's test_cfg settings."""

    def __init__(
        self,
        *,
        flat: bool,
        cate: Sequence[int],
        kernel: Sequence[int],
        mask_feat: int,
        grids: Sequence[int],
        strides: Sequence[int],
        cate_logits: bool = True,
        mask_stride: int = 4,
        nms_pre: int = 500,
        filter_thr: float = 0.05,
        matrix_kernel: str = "gaussian",
        sigma: float = 2.0,
    ) -> None: ...
    @property
    def flat(self) -> bool: ...
    @property
    def cate(self) -> list[int]: ...
    @property
    def kernel(self) -> list[int]: ...
    @property
    def mask_feat(self) -> int: ...
    @property
    def grids(self) -> list[int]: ...
    @property
    def strides(self) -> list[int]: ...
    @property
    def cate_logits(self) -> bool: ...
    @property
    def mask_stride(self) -> int: ...
    @property
    def nms_pre(self) -> int: ...
    @property
    def filter_thr(self) -> float: ...
    @property
    def gaussian(self) -> bool: ...
    @property
    def sigma(self) -> float: ...

def postprocess_solov2(
    layout: Solov2Layout,
    outputs: Sequence[npt.ArrayLike],
    quants: Sequence[_Quant | None],
    letterbox: Letterbox,
    options: Any,
) -> Instances:
    """The whole postprocess of one image of a SOLOv2 export (``nms`` "matrix", the reference, or "mask", "fast",
    "box")."""

class DetsLayout:
    """Which output of an end-to-end dets / labels / masks export is which (``edgeseg::DetsLayout``): MMDeploy's
    ``dets`` [K, 5] (``scores`` None) or torchvision's ``boxes`` [K, 4] + ``scores``; ``labels``; ``masks``
    box-relative (``roi_masks``, pasted by ``convention`` "mmdet" or "torchvision") or full frame."""

    def __init__(
        self,
        *,
        boxes: int,
        scores: int | None,
        labels: int,
        masks: int,
        roi_masks: bool,
        convention: str,
        inclusive: bool,
        num_classes: int,
    ) -> None: ...
    @property
    def boxes(self) -> int: ...
    @property
    def scores(self) -> int: ...
    @property
    def labels(self) -> int: ...
    @property
    def masks(self) -> int: ...
    @property
    def roi_masks(self) -> bool: ...
    @property
    def inclusive(self) -> bool: ...
    @property
    def torchvision_paste(self) -> bool: ...
    @property
    def num_classes(self) -> int: ...

def postprocess_dets(
    layout: DetsLayout,
    outputs: Sequence[npt.ArrayLike],
    quants: Sequence[_Quant | None],
    letterbox: Letterbox,
    options: Any,
) -> Instances:
    """The whole postprocess of one image of an end-to-end export (labels int64, int32 or float; NMS ran in the
    graph): rows above conf, class filter, max_det, boxes to source pixels, masks pasted or cropped."""

def postprocess_yolo_split(
    layout: SplitLayout,
    outputs: Sequence[npt.ArrayLike],
    quants: Sequence[_Quant | None],
    letterbox: Letterbox,
    options: Any,
) -> Instances:
    """The whole postprocess of one image of a split head (outputs without their batch dimension, each in its own
    dtype with its quantization or None): decode per stride, suppress, unletterbox, masks."""

def yolo_layout(
    output_shapes: Sequence[Sequence[int | None]], input_shape: Sequence[int | None], metadata: Mapping[str, str]
) -> YoloLayout:
    """The YOLO layout from output shapes (batch included, None where dynamic), input shape and metadata, as the
    C++ API decides it (boxes taken as pixels)."""

def parse_names(value: str) -> list[str]:
    """Class names of an Ultralytics ``names`` metadata value (a dict literal by index, or a list)."""

def postprocess_yolo(
    layout: YoloLayout,
    outputs: Sequence[npt.ArrayLike],
    quants: Sequence[_Quant | None],
    letterbox: Letterbox,
    options: Any,
) -> Instances:
    """The whole postprocess of one image (outputs without their batch dimension, one quantization or None
    each; ``options`` with ``PostprocessOptions``' attributes): decode, suppress, unletterbox, masks."""

def finish_yolo(
    detections: Detections, prototypes: npt.ArrayLike, quant: _Quant | None, letterbox: Letterbox, options: Any
) -> Instances:
    """Decoded candidates (input pixels) -> suppression as ``options.nms`` says (none for "box": the decoder
    did it), unletterbox, masks from the (C, h, w) prototypes; instances with empty masks dropped."""
