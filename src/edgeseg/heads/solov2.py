"""SOLOv2 raw heads (MMDetection's SOLOV2Head): category grids, dynamic kernels and the mask feature.

Decoding, Matrix NMS and mask assembly run in the core (``_core.decode_solov2``), following
MMDetection's ``SOLOV2Head.predict_by_feat`` / ``_predict_by_feat_single`` and ``mask_matrix_nms``
(v3; v2's ``get_results`` is the same): sigmoid and 2x2 point NMS on each category grid, score
threshold, one dynamic 1x1 convolution of the mask feature per candidate, mask threshold, area
filter (pixels > the level's stride), rescoring by the mean probability inside the mask, Matrix
NMS (Gaussian, sigma 2), then the kept probabilities resized to the padded input, cropped to the
image, resized to the source image and thresholded, straight into box-cropped bit-packed masks.

Two layouts are read:

- ``solov2_levels``: the head's outputs as MMDetection's ``forward`` returns them, one category
  grid ``[B, C, S, S]`` and one kernel grid ``[B, E, S, S]`` per level, and the mask feature
  ``[B, E, H/4, W/4]``. The category grids are logits there (the sigmoid and point NMS are in
  ``predict_by_feat``); a graph that applies them is read as well (``cate_activation``).
- ``solov2_flat``: the levels flattened as MMDeploy's ``predict_by_feat`` rewrite does, point by
  point (level, row, column): ``cate_preds [B, G, C]``, ``kernel_preds [B, G, E]`` and
  ``mask_feats [B, E, H/4, W/4]``, with metadata ``grids`` and ``strides`` (Python list literals;
  MMDetection's defaults ``[40, 36, 24, 16, 12]`` and ``[8, 8, 16, 32, 32]`` when absent) and
  ``names``. G must be the sum of S^2 over the grids.

Point NMS is idempotent, so category scores that already went through it in the graph decode the
same. Whether the scores are logits or probabilities is read from the metadata ``cate_activation``
(``"logits"`` or ``"sigmoid"``), the load option of that name, or else from one probe inference on a
blank image: probabilities never leave [0, 1], the logits of a trained head (focal-loss prior -4.6)
are negative almost everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._core import Letterbox
from ..preprocess import to_input
from ..spec import Defaults, Layout, LoadContext, ModelSpec, Preprocess, literal, meta_int, names_from_metadata
from .base import Head, Instances, PostprocessOptions, instances_of

LAYOUTS = """SOLOv2 raw heads (family "solov2", MMDetection SOLOV2Head; NMS by edgeseg: Matrix NMS):
  solov2_levels: per level category scores [B, C, S, S] (logits or probabilities) and kernels [B, E, S, S],
                 and the mask feature [B, E, H/4, W/4]; metadata "strides" (default [8, 8, 16, 32, 32])
  solov2_flat:   cate_preds [B, G, C], kernel_preds [B, G, E], mask_feats [B, E, H/4, W/4] with G = sum of S^2
                 over metadata "grids" (default [40, 36, 24, 16, 12]); metadata "strides", "names\""""

DEFAULT_GRIDS = (40, 36, 24, 16, 12)
DEFAULT_STRIDES = (8, 8, 16, 32, 32)
MAX_LEVELS = 16
MAX_GRID = 1024

# MMDetection's SOLOv2 data preprocessor (configs/solov2): RGB, ImageNet mean/std in pixels, images
# resized keeping the aspect ratio and padded bottom-right (to a multiple of 32) with zeros after
# normalization.
MMDET_PREPROCESS = Preprocess(
    resize="keep_ratio", pad_value=None, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), rgb=True
)
# SOLOv2's test_cfg: score_thr 0.1, mask_thr 0.5, max_per_img 100, Matrix NMS (filter_thr, nms_pre,
# kernel and sigma are layout options below). iou only serves the other NMS kinds.
SOLOV2_DEFAULTS = Defaults(conf=0.1, iou=0.5, max_det=100, nms="matrix", mask_threshold=0.5)


@dataclass(frozen=True)
class Solov2Layout:
    """Which output is which in a SOLOv2 export, and the reference's settings.

    Attributes:
        flat: the levels are flattened (``solov2_flat``) instead of one output per level.
        cate_outputs: category outputs, one per level (levels) or one (flat).
        kernel_outputs: kernel outputs, likewise.
        mask_feat_output: index of the mask feature output.
        grids: S of each level.
        strides: each level's stride (the minimum mask area, in mask-feature pixels).
        num_kernels: E, the mask feature's channels.
        cate_logits: category scores are logits (else probabilities).
        mask_stride: input pixels per mask-feature pixel.
        nms_pre: candidates entering Matrix NMS (500).
        filter_thr: decayed score kept by Matrix NMS (0.05).
        kernel: Matrix NMS kernel, ``"gaussian"`` or ``"linear"``.
        sigma: Gaussian kernel's sigma (2.0).
    """

    flat: bool
    cate_outputs: tuple[int, ...]
    kernel_outputs: tuple[int, ...]
    mask_feat_output: int
    grids: tuple[int, ...]
    strides: tuple[int, ...]
    num_kernels: int
    cate_logits: bool
    mask_stride: int = 4
    nms_pre: int = 500
    filter_thr: float = 0.05
    kernel: str = "gaussian"
    sigma: float = 2.0

    def describe(self) -> tuple[list[str], dict[int, str]]:
        """Lines for ``edgeseg info`` and each output's role."""
        lines = [
            f"grids:       {list(self.grids)} (strides {list(self.strides)})",
            f"kernels:     {self.num_kernels} channels, mask stride {self.mask_stride}",
            f"categories:  {'logits' if self.cate_logits else 'probabilities'}",
            f"matrix nms:  {self.kernel}"
            + (f" sigma {self.sigma:g}" if self.kernel == "gaussian" else "")
            + f", filter {self.filter_thr:g}, nms_pre {self.nms_pre}",
        ]
        roles = {self.mask_feat_output: "mask feature"}
        for lvl, (c, k) in enumerate(zip(self.cate_outputs, self.kernel_outputs)):
            roles[c] = "category scores" if self.flat else f"category scores, level {lvl}"
            roles[k] = "kernels" if self.flat else f"kernels, level {lvl}"
        return lines, roles


class Solov2Head:
    """Decodes one image of a SOLOv2 export in the core (``_core.postprocess_solov2``, the call C++ users make)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.layout: Solov2Layout = spec.layout
        lay = self.layout
        self._quants = [o.quant for o in spec.outputs]
        self.core_layout = _core.Solov2Layout(
            flat=lay.flat,
            cate=list(lay.cate_outputs),
            kernel=list(lay.kernel_outputs),
            mask_feat=lay.mask_feat_output,
            grids=list(lay.grids),
            strides=list(lay.strides),
            cate_logits=lay.cate_logits,
            mask_stride=lay.mask_stride,
            nms_pre=lay.nms_pre,
            filter_thr=lay.filter_thr,
            matrix_kernel=lay.kernel,
            sigma=lay.sigma,
        )
        """The layout as the C++ API takes it (``edgeseg::Solov2Layout``)."""

    def __call__(self, outputs: list[np.ndarray], index: int, lb: Letterbox, options: PostprocessOptions) -> Instances:
        found = _core.postprocess_solov2(self.core_layout, [o[index] for o in outputs], self._quants, lb, options)
        return instances_of(found, lb)

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest category score of image ``index`` (a health signal)."""
        cates, _ = self._levels(outputs, index)
        top = max((float(np.max(c)) for c in cates if c.size), default=0.0)
        return float(1.0 / (1.0 + np.exp(-top))) if self.layout.cate_logits else top


def _ints(text: str | None) -> tuple[int, ...] | None:
    value = literal(text)
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    return None


class Solov2Family:
    """Detects SOLOv2 raw-head exports (per-level or flattened outputs) and makes their decoder."""

    name = "solov2"
    layouts = LAYOUTS
    options = ("cate_activation", "matrix_kernel", "matrix_sigma", "filter_thr", "nms_pre")

    def detect(self, ctx: LoadContext) -> Layout | None:
        """A ``solov2_levels`` or ``solov2_flat`` layout, None for outputs of another shape, or a
        ModelError for outputs that are clearly SOLOv2's (names, metadata) but do not fit together."""
        outs = ctx.outputs
        meta = ctx.metadata
        names = [o.name.lower() for o in outs]
        hinted = "grids" in meta or any("cate" in n or "solo" in n for n in names)
        rank3 = [i for i, o in enumerate(outs) if len(o.shape) == 3]
        rank4 = [i for i, o in enumerate(outs) if len(o.shape) == 4]
        if len(outs) == 3 and len(rank3) == 2 and len(rank4) == 1:
            found = self._flat(ctx, rank3, rank4[0], hinted)
        elif len(rank4) == len(outs) >= 3 and len(outs) % 2 == 1:
            found = self._levels(ctx, hinted)
        else:
            return None
        if found is None:
            return None
        flat, cate_outs, kernel_outs, feat_i, grids, num_classes = found
        if len(grids) > MAX_LEVELS or any(not 1 <= s <= MAX_GRID for s in grids):
            raise ctx.unsupported(f"grids {list(grids)} are not 1..{MAX_LEVELS} levels of 1..{MAX_GRID} cells")
        strides = _ints(meta.get("strides"))
        if "strides" in meta and strides is None:
            raise ctx.unsupported(f"metadata strides={meta['strides']!r} is not a list of integers")
        if strides is None:
            if len(grids) != len(DEFAULT_STRIDES):
                raise ctx.unsupported(
                    f"{len(grids)} levels but no metadata 'strides' (the default {list(DEFAULT_STRIDES)} has 5)"
                )
            strides = DEFAULT_STRIDES
        if len(strides) != len(grids) or any(s < 1 for s in strides):
            raise ctx.unsupported(f"metadata strides {list(strides)} do not give a positive stride per level")
        ctx.check_output_dtypes(range(len(outs)))
        if any(o.dtype != np.float32 for o in outs):
            raise ctx.unsupported("SOLOv2 outputs must be float32")
        feat = outs[feat_i]
        e = int(feat.shape[1])
        fh, fw = feat.shape[2], feat.shape[3]
        in_h, in_w = ctx.input_hw
        mask_stride = meta_int(ctx.path, meta, "mask_stride", default=0, high=64)
        if not mask_stride:
            mask_stride = 4  # MMDetection's MaskFeatModule default
            if None not in (in_h, in_w, fh, fw) and in_h % fh == 0 and in_w % fw == 0 and in_h // fh == in_w // fw:
                mask_stride = in_h // fh
        opts = ctx.options
        activation = opts.get("cate_activation", meta.get("cate_activation"))
        if activation not in (None, "logits", "sigmoid"):
            raise ValueError(f"cate_activation must be 'logits' or 'sigmoid', got {activation!r}")
        kernel = opts.get("matrix_kernel", "gaussian")
        if kernel not in ("gaussian", "linear"):
            raise ValueError(f"matrix_kernel must be 'gaussian' or 'linear', got {kernel!r}")
        sigma, filter_thr, nms_pre = (
            opts.get("matrix_sigma", 2.0),
            opts.get("filter_thr", 0.05),
            opts.get("nms_pre", 500),
        )
        for key, value in (("matrix_sigma", sigma), ("filter_thr", filter_thr)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{key} must be a non-negative number, got {value!r}")
        if isinstance(nms_pre, bool) or not isinstance(nms_pre, int):
            raise ValueError(f"nms_pre must be an int (<= 0: no limit), got {nms_pre!r}")
        stride = 32  # MMDetection pads the input to a multiple of 32
        size = ctx.input_size(stride, default=(800, 1344))
        logits = activation == "logits" if activation is not None else _probe_logits(ctx, size, cate_outs)
        params = Solov2Layout(
            flat=flat,
            cate_outputs=tuple(cate_outs),
            kernel_outputs=tuple(kernel_outs),
            mask_feat_output=feat_i,
            grids=tuple(grids),
            strides=tuple(strides),
            num_kernels=e,
            cate_logits=logits,
            mask_stride=mask_stride,
            nms_pre=int(nms_pre),
            filter_thr=float(filter_thr),
            kernel=kernel,
            sigma=float(sigma),
        )
        head = "solov2_flat" if flat else "solov2_levels"
        summary = (
            "SOLOv2 raw head, levels flattened (MMDeploy order), Matrix NMS by edgeseg"
            if flat
            else "SOLOv2 raw head (MMDetection SOLOV2Head outputs), Matrix NMS by edgeseg"
        )
        return Layout(
            "solov2",
            head,
            params,
            num_classes,
            summary,
            names=names_from_metadata(meta),
            preprocess=MMDET_PREPROCESS,
            defaults=SOLOV2_DEFAULTS,
            stride=stride,
            imgsz=None if ctx.input_hw[0] is not None else (800, 1344),
        )

    def make_head(self, spec: ModelSpec) -> Head:
        """The decoder for ``spec``."""
        return Solov2Head(spec)

    @staticmethod
    def _flat(
        ctx: LoadContext, rank3: list[int], feat_i: int, hinted: bool
    ) -> tuple[bool, list[int], list[int], int, tuple[int, ...], int | None] | None:
        outs = ctx.outputs
        feat = outs[feat_i]
        e = feat.shape[1]
        a, b = rank3
        last = {i: outs[i].shape[2] for i in rank3}
        fits = [i for i in rank3 if e is not None and last[i] == e]
        if len(fits) == 2:  # C == E: only the names can tell
            fits = [i for i in rank3 if "kernel" in outs[i].name.lower()]
        if len(fits) != 1:
            if not hinted:
                return None
            raise ctx.unsupported(
                f"expected one of {outs[a].name} {list(outs[a].shape)} and {outs[b].name} {list(outs[b].shape)} "
                f"to be the kernels [B, G, E] with E = {e}, the channels of the mask feature {feat.name}"
            )
        kern_i = fits[0]
        cate_i = b if kern_i == a else a
        g_c, g_k = outs[cate_i].shape[1], outs[kern_i].shape[1]
        if g_c is not None and g_k is not None and g_c != g_k:
            if not hinted:
                return None
            raise ctx.unsupported(
                f"the category scores {outs[cate_i].name} have {g_c} points but the kernels "
                f"{outs[kern_i].name} have {g_k}: both must be [B, G, ...] over the same grid points"
            )
        meta = ctx.metadata
        grids = _ints(meta.get("grids"))
        if "grids" in meta and grids is None:
            raise ctx.unsupported(f"metadata grids={meta['grids']!r} is not a list of integers")
        grids = grids or DEFAULT_GRIDS
        expected = sum(s * s for s in grids)
        g = g_c if g_c is not None else g_k
        if g is not None and g != expected:
            if not hinted and "grids" not in meta:
                return None
            raise ctx.unsupported(
                f"the category scores {outs[cate_i].name} and kernels {outs[kern_i].name} have G = {g} points, "
                f"but the grids {list(grids)} "
                f"{'in the metadata' if 'grids' in meta else '(the default; put grids in the metadata)'} "
                f"give G = sum(S^2) = {expected}"
            )
        nc = outs[cate_i].shape[2]
        return True, [cate_i], [kern_i], feat_i, tuple(grids), nc

    @staticmethod
    def _levels(
        ctx: LoadContext, hinted: bool
    ) -> tuple[bool, list[int], list[int], int, tuple[int, ...], int | None] | None:
        outs = ctx.outputs

        def fail(why: str) -> None:
            if hinted:
                raise ctx.unsupported(why)

        if any(d is None for o in outs for d in o.shape[1:]):
            fail("per-level SOLOv2 outputs need fixed channel and grid sizes")
            return None
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, o in enumerate(outs):
            by_size.setdefault((o.shape[2], o.shape[3]), []).append(i)
        named = [i for i, o in enumerate(outs) if "feat" in o.name.lower()]
        if len(named) == 1:
            feat_i = named[0]
        else:
            singles = [v[0] for v in by_size.values() if len(v) == 1]
            if len(singles) != 1:
                fail("cannot tell the mask feature among the outputs: name it '...feat...'")
                return None
            feat_i = singles[0]
        e = outs[feat_i].shape[1]
        cates: list[int] = []
        kernels: list[int] = []
        for (h, w), members in by_size.items():
            members = [i for i in members if i != feat_i]
            if not members:
                continue
            if len(members) != 2 or h != w:
                fail(
                    f"expected one category grid [B, C, S, S] and one kernel grid [B, {e}, S, S] per level; "
                    f"found {', '.join(outs[i].describe() for i in members)}"
                )
                return None
            fits = [i for i in members if outs[i].shape[1] == e]
            if len(fits) == 2:
                fits = [i for i in members if "kernel" in outs[i].name.lower()]
            if len(fits) != 1:
                fail(
                    f"of {outs[members[0]].name} and {outs[members[1]].name} one must be the kernels with "
                    f"E = {e} channels, as the mask feature {outs[feat_i].name} has"
                )
                return None
            kernels.append(fits[0])
            cates.append(members[0] if fits[0] == members[1] else members[1])
        classes = {outs[i].shape[1] for i in cates}
        if len(classes) != 1:
            fail(f"the category grids {', '.join(outs[i].describe() for i in cates)} differ in their class count")
            return None
        # Levels in the order the exporter wrote the category grids (MMDetection's level order),
        # unless the metadata lists the grids.
        order = sorted(range(len(cates)), key=lambda k: cates[k])
        grids = [int(outs[cates[k]].shape[2]) for k in order]
        meta_grids = _ints(ctx.metadata.get("grids"))
        if meta_grids is not None:
            if sorted(meta_grids) != sorted(grids):
                raise ctx.unsupported(f"metadata grids {list(meta_grids)} do not match the outputs' grids {grids}")
            remaining = list(order)
            order = []
            for s in meta_grids:
                k = next(k for k in remaining if outs[cates[k]].shape[2] == s)
                remaining.remove(k)
                order.append(k)
            grids = list(meta_grids)
        elif not hinted and len(grids) != len(DEFAULT_GRIDS):
            return None
        return False, [cates[k] for k in order], [kernels[k] for k in order], feat_i, tuple(grids), classes.pop()


FAMILY = Solov2Family()


def _probe_logits(ctx: LoadContext, size: tuple[int, int], cate_outputs: list[int]) -> bool:
    """Whether the category scores are logits: one inference on a mid-grey image; probabilities
    never leave [0, 1]."""
    rt, inp = ctx.runtime, ctx.input
    batch = inp.shape[0] or 1
    tensor = np.zeros((batch, 3, *size) if ctx.input_layout == "NCHW" else (batch, *size, 3), inp.dtype)
    grey = np.full((*size, 3), 128, np.uint8)
    quant = None if inp.scale is None else (inp.scale, inp.zero_point)
    for slot in tensor:
        to_input(grey, slot, ctx.input_layout, quant, MMDET_PREPROCESS)
    outputs = rt.run({inp.name: tensor})
    values = [outputs[i] for i in cate_outputs]
    return any(v.size and (float(np.nanmin(v)) < 0.0 or float(np.nanmax(v)) > 1.0) for v in values)
