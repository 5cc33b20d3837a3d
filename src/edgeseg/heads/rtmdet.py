"""RTMDet-Ins raw heads: per-level class logits, box distances and dynamic-kernel parameters plus the
stride-8 mask feature, decoded by the core (NMS, then each survivor's 3-layer dynamic mask network
evaluated only inside its box).

The layout is MMDetection's ``RTMDetInsHead.forward`` (``rtmdet_ins_head.py``) exported without
its ``predict_by_feat``: per stride s in 8, 16, 32 ``cls_score`` [B, C, H/s, W/s] (logits),
``bbox_pred`` [B, 4, H/s, W/s] (distances left, top, right, bottom in input pixels, already times
the stride), ``kernel_pred`` [B, P, H/s, W/s], and ``mask_feat`` [B, M, H/8, W/8]. P is the
parameter count of the per-instance network over M + 2 channels (169 for M = 8, 8 channels,
3 layers). Postprocess and preprocessing as the RTMDet-Ins configs (``rtmdet_l_8xb32-300e_coco.py``
test_cfg and test_pipeline, inherited by every ``rtmdet-ins_*`` config): keep-ratio resize padded
bottom-right with grey 114, BGR, mean (103.53, 116.28, 123.675), std (57.375, 57.12, 58.395);
``nms_pre`` 30000 per level, NMS IoU 0.65, ``max_per_img`` 300, ``mask_thr_binary`` 0.5 (its
evaluation ``score_thr`` is 0.001; edgeseg defaults to mmdet's deployment / demo score 0.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._core import Letterbox
from ..spec import MAX_CLASSES, Defaults, Layout, LoadContext, ModelSpec, Preprocess, names_from_metadata
from .base import Head, Instances, PostprocessOptions, instances_of

LAYOUTS = """RTMDet-Ins raw head (family "rtmdet"):
  rtmdet_ins:  per stride s (8, 16, 32): class logits [B, C, H/s, W/s], box distances [B, 4, H/s, W/s]
               (left, top, right, bottom in input pixels), kernels [B, P, H/s, W/s]; mask feature
               [B, M, H/8, W/8]; P = dynamic mask-network parameters (169 for M = 8)"""

RTMDET_PREPROCESS = Preprocess(
    resize="keep_ratio", pad_value=114.0, mean=(103.53, 116.28, 123.675), std=(57.375, 57.12, 58.395), rgb=False
)
RTMDET_DEFAULTS = Defaults(conf=0.3, iou=0.65, max_det=300, nms="box", mask_threshold=0.5)

# Output name keywords by role, most specific first ("cls_score" holds "score", "mask_feat" "mask").
_ROLE_WORDS = (
    ("kernel", ("kernel", "param")),
    ("mask", ("mask", "proto")),
    ("box", ("bbox", "box", "reg")),
    ("cls", ("cls", "score", "logit")),
)


@dataclass(frozen=True)
class RtmdetLayout:
    """Which output is which in a raw RTMDet-Ins export.

    Attributes:
        cls_outputs, box_outputs, kernel_outputs: output indices per level, finest (stride 8) first.
        mask_output: index of the mask feature.
        strides: each level's stride in input pixels (the mask feature's is the first).
        feat_channels: mask feature channels (MMDetection's num_prototypes).
        dyconv_channels, num_dyconvs: width and depth of the per-instance mask network.
        num_params: parameters per instance (kernel channels).
    """

    cls_outputs: tuple[int, ...]
    box_outputs: tuple[int, ...]
    kernel_outputs: tuple[int, ...]
    mask_output: int
    strides: tuple[int, ...]
    feat_channels: int
    dyconv_channels: int
    num_dyconvs: int
    num_params: int

    def describe(self) -> tuple[list[str], dict[int, str]]:
        """Lines for ``edgeseg info`` and each output's role."""
        lines = [
            f"strides:     {', '.join(map(str, self.strides))}",
            f"mask net:    {self.num_dyconvs} dynamic 1x1 convs over {self.feat_channels} + 2 channels, "
            f"{self.dyconv_channels} wide ({self.num_params} parameters)",
        ]
        roles = {self.mask_output: "mask feature"}
        for s, c, b, k in zip(self.strides, self.cls_outputs, self.box_outputs, self.kernel_outputs):
            roles.update({c: f"class logits, stride {s}", b: f"box distances, stride {s}", k: f"kernels, stride {s}"})
        return lines, roles


class RtmdetInsHead:
    """Decodes one image of a raw RTMDet-Ins export (see the module docstring)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.layout: RtmdetLayout = spec.layout
        lay = self.layout
        self._quants = [None] * len(spec.outputs)  # the family's outputs are float32 (checked at load)
        self.core_layout = _core.RtmdetLayout(
            cls=list(lay.cls_outputs),
            box=list(lay.box_outputs),
            kernel=list(lay.kernel_outputs),
            strides=list(lay.strides),
            mask_feat=lay.mask_output,
            dyconv_channels=lay.dyconv_channels,
            num_dyconvs=lay.num_dyconvs,
        )
        """The layout as the C++ API takes it (``edgeseg::RtmdetLayout``)."""

    def __call__(self, outputs: list[np.ndarray], index: int, lb: Letterbox, options: PostprocessOptions) -> Instances:
        if options.nms != "box":
            raise ValueError(f"the rtmdet family decodes with nms='box' (its reference), got nms={options.nms!r}")
        image_outputs = [np.ascontiguousarray(o[index]) for o in outputs]
        return instances_of(_core.postprocess_rtmdet(self.core_layout, image_outputs, self._quants, lb, options), lb)

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest sigmoid class score over all levels of image ``index`` (a health signal)."""
        best = max(float(outputs[i][index].max()) for i in self.layout.cls_outputs)
        return float(1.0 / (1.0 + np.exp(-best)))


class RtmdetFamily:
    """Detects raw RTMDet-Ins exports (3 x (class, box, kernel) levels + a mask feature)."""

    name = "rtmdet"
    layouts = LAYOUTS
    options = ("dyconv_channels", "num_dyconvs")

    def detect(self, ctx: LoadContext) -> Layout | None:
        """An ``rtmdet_ins`` layout; None unless every output is rank 4 and there are 3 per level plus one;
        a ModelError when they are but do not fit together (kernel channels for the mask feature, sizes)."""
        outs = ctx.outputs
        n = len(outs)
        if n < 4 or (n - 1) % 3 or any(len(o.shape) != 4 for o in outs):
            return None
        levels = (n - 1) // 3
        if not any(o.shape[1] == 4 for o in outs):
            return None  # RTMDet's boxes are 4 distances a level (a split YOLO head has 4 x 16 bins)
        dyc = _option_int(ctx, "dyconv_channels", 8)
        ndc = _option_int(ctx, "num_dyconvs", 3)
        ctx.check_output_dtypes(range(n))
        if any(o.dtype != np.float32 for o in outs):
            raise ctx.unsupported("raw RTMDet-Ins outputs must be float32 (quantized outputs are not supported)")
        if any(d is None for o in outs for d in o.shape[1:]) or None in ctx.input_hw:
            raise ctx.unsupported("raw RTMDet-Ins exports need fixed input and output sizes")
        roles = _roles_by_name(ctx, levels) or _roles_by_shape(ctx, levels, dyc, ndc)
        cls_i, box_i, ker_i, mask_i = roles
        # Finest level first: the point priors and the mask feature's stride follow the sizes.
        order = sorted(range(levels), key=lambda k: -outs[cls_i[k]].shape[2])
        cls_i, box_i, ker_i = ([idx[k] for k in order] for idx in (cls_i, box_i, ker_i))
        in_h, in_w = ctx.input_hw
        strides = []
        for c, b, k in zip(cls_i, box_i, ker_i):
            _, _nc_c, h, w = outs[c].shape
            if outs[b].shape[1] != 4:
                raise ctx.unsupported(
                    f"box output {outs[b].name} has {outs[b].shape[1]} channels, expected 4 (l, t, r, b)"
                )
            if outs[b].shape[2:] != (h, w) or outs[k].shape[2:] != (h, w):
                raise ctx.unsupported(
                    f"outputs {outs[c].name}, {outs[b].name}, {outs[k].name} of one level differ in size"
                )
            if in_h % h or in_w % w or in_h // h != in_w // w:
                raise ctx.unsupported(f"output {outs[c].name} of {h}x{w} is not the input {in_h}x{in_w} over a stride")
            strides.append(in_h // h)
        if len(set(strides)) != levels:
            raise ctx.unsupported(f"levels have strides {strides}; each level needs its own stride")
        ncs = {outs[c].shape[1] for c in cls_i}
        nps = {outs[k].shape[1] for k in ker_i}
        if len(ncs) != 1 or len(nps) != 1:
            raise ctx.unsupported("class or kernel outputs differ in channels between levels")
        nc, npar = ncs.pop(), nps.pop()
        if not 1 <= nc <= MAX_CLASSES:
            raise ctx.unsupported(f"class outputs imply {nc} classes (1..{MAX_CLASSES})")
        mask = outs[mask_i]
        m = mask.shape[1]
        if mask.shape[2:] != outs[cls_i[0]].shape[2:]:
            raise ctx.unsupported(
                f"mask feature {mask.name} is {mask.shape[2]}x{mask.shape[3]}; expected the finest level's "
                f"{outs[cls_i[0]].shape[2]}x{outs[cls_i[0]].shape[3]} (stride {strides[0]})"
            )
        expected = _core.dynconv_num_params(m, dyc, ndc)
        if npar != expected:
            names = ", ".join(outs[k].name for k in ker_i)
            raise ctx.unsupported(
                f"kernel outputs {names} have {npar} channels; a dynamic mask network over the {m}-channel mask "
                f"feature {mask.name} (+2 relative coordinates, {ndc} layers {dyc} wide) needs {expected}"
            )
        params = RtmdetLayout(tuple(cls_i), tuple(box_i), tuple(ker_i), mask_i, tuple(strides), m, dyc, ndc, npar)
        summary = "raw RTMDet-Ins head (MMDetection RTMDetInsHead outputs), NMS and dynamic masks by edgeseg"
        return Layout(
            "rtmdet",
            "rtmdet_ins",
            params,
            nc,
            summary,
            names=names_from_metadata(ctx.metadata),
            preprocess=RTMDET_PREPROCESS,
            defaults=RTMDET_DEFAULTS,
            stride=max(strides),
        )

    def make_head(self, spec: ModelSpec) -> Head:
        """The decoder for ``spec``."""
        return RtmdetInsHead(spec)


FAMILY = RtmdetFamily()


def _option_int(ctx: LoadContext, key: str, default: int) -> int:
    value = ctx.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 4096:
        raise ValueError(f"{key} must be an integer in 1..4096, got {value!r}")
    return int(value)


def _role(name: str) -> str | None:
    low = name.lower()
    for role, words in _ROLE_WORDS:
        if any(w in low for w in words):
            return role
    return None


def _roles_by_name(ctx: LoadContext, levels: int) -> tuple[list[int], list[int], list[int], int] | None:
    """Roles from the output names when every name tells one and the counts fit, else None."""
    found: dict[str, list[int]] = {"cls": [], "box": [], "kernel": [], "mask": []}
    for i, o in enumerate(ctx.outputs):
        role = _role(o.name)
        if role is None:
            return None
        found[role].append(i)
    if [len(found[r]) for r in ("cls", "box", "kernel", "mask")] != [levels, levels, levels, 1]:
        return None
    return found["cls"], found["box"], found["kernel"], found["mask"][0]


def _roles_by_shape(ctx: LoadContext, levels: int, dyc: int, ndc: int) -> tuple[list[int], list[int], list[int], int]:
    """Roles from shapes: outputs grouped by size (the finest group also holds the mask feature); in each
    group the kernels are the output whose channels fit the mask feature's network, the boxes the 4-channel
    one; where channels cannot tell, output order decides (as mmdet's forward returns them)."""
    outs = ctx.outputs
    groups: dict[tuple[int, int], list[int]] = {}
    for i, o in enumerate(outs):
        groups.setdefault((o.shape[2], o.shape[3]), []).append(i)
    sizes = sorted(groups, key=lambda hw: -hw[0] * hw[1])
    if len(sizes) != levels or len(groups[sizes[0]]) != 4 or any(len(groups[s]) != 3 for s in sizes[1:]):
        raise ctx.unsupported(
            f"expected {levels} sizes of outputs (class, box, kernel per level, the finest also with the mask "
            f"feature); found sizes {[list(s) for s in sizes]} with {[len(groups[s]) for s in sizes]} outputs"
        )
    coarse = [c for s in sizes[1:] for c in (outs[i].shape[1] for i in groups[s])]
    finest = groups[sizes[0]]
    if levels > 1:
        extra = [i for i in finest if outs[i].shape[1] not in coarse]
        if len(extra) != 1:
            extra = [finest[-1]] if outs[finest[-1]].shape[1] not in (4,) else []
    else:
        extra = [finest[-1]]  # one level: mmdet's forward returns the mask feature last
    if len(extra) != 1:
        raise ctx.unsupported("cannot tell which output is the mask feature; name it mask_feat")
    mask_i = extra[0]
    m = outs[mask_i].shape[1]
    expected = _core.dynconv_num_params(m, dyc, ndc)
    cls_i: list[int] = []
    box_i: list[int] = []
    ker_i: list[int] = []
    for s in sizes:
        members = sorted(i for i in groups[s] if i != mask_i)
        # mmdet's forward returns class logits, boxes, kernels: output order settles what channels cannot.
        fits = [i for i in members if outs[i].shape[1] == expected]
        k = fits[0] if len(fits) == 1 else members[-1]  # none fits: reported after, with the expected count
        a, b = (i for i in members if i != k)
        if outs[b].shape[1] == 4:
            box, cls = b, a
        elif outs[a].shape[1] == 4:
            box, cls = a, b
        else:
            raise ctx.unsupported(f"no 4-channel box output among {[outs[i].name for i in members]}")
        cls_i.append(cls)
        box_i.append(box)
        ker_i.append(k)
    return cls_i, box_i, ker_i, mask_i
