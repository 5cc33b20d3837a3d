"""A small YOLACT-style network and YOLACT's losses, for ``edgeseg train --head yolact``.

The network: PartSeg's backbone (``net.py`` blocks), an FPN-lite neck (P3..P5, top-down only), a prototype
branch on P3 (``K`` ReLU prototypes at stride 4) and one prediction head shared by the levels that gives,
for every prior, softmax class confidences with background at index 0, SSD-encoded box offsets (variances
0.1 / 0.2) and ``tanh`` mask coefficients. Training also uses YOLACT's auxiliary semantic segmentation branch
(not exported).

The losses follow dbolya/yolact ``layers/modules/multibox_loss.py``: priors matched to instances by IoU
(>= 0.5 positive, < 0.4 background, in between ignored; every instance's best prior is positive),
smooth-L1 on the encoded offsets, softmax cross-entropy with online hard negative mining (3 negatives per
positive), and BCE of the prototype-assembled masks cropped to the instance's box (padding 1 prototype
pixel, as YOLACT crops) and normalised by the box area; every term is divided by the number of positives.

The ONNX export is the OpenVINO-model-zoo layout (priors and box decoding baked into the graph):
``boxes [1, N, 4]`` normalised x1y1x2y2, ``conf [1, N, nc + 1]`` softmax with background class 0,
``mask [1, N, K]`` tanh coefficients, ``proto [1, H/4, W/4, K]`` NHWC. Input: the image stretched to the
input size, RGB, ImageNet mean / std.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ..spec import Preprocess
from .export import write_onnx
from .net import PROTO_STRIDE, ConvBnAct, PoolPyramid, SplitBlock

# YOLACT's preprocessing: plain resize, RGB, ImageNet mean / std in pixel units.
PREPROCESS = Preprocess(
    resize="stretch", pad_value=None, mean=(123.68, 116.78, 103.94), std=(58.40, 57.12, 57.38), rgb=True
)
VARIANCES = (0.1, 0.2)
STRIDES = (8, 16, 32)
EPS = 1e-9


@dataclass(frozen=True)
class YolactConfig:
    """Widths, prototypes and priors. The defaults make a ~1 M-parameter model that trains on a CPU.

    ``scales`` are the prior sizes per level in input pixels (two per level, a factor sqrt(2) apart, so that
    every part of the synthetic scenes has a prior it overlaps by IoU >= 0.5); each scale comes in every
    aspect ratio of ``aspect_ratios`` (width / height).
    """

    num_classes: int
    widths: tuple[int, int, int, int, int] = (16, 32, 64, 96, 128)
    depths: tuple[int, int, int, int] = (1, 2, 2, 1)
    fpn_width: int = 64
    head_width: int = 64
    proto_width: int = 64
    num_protos: int = 32
    scales: tuple[tuple[float, ...], ...] = ((20.0, 28.0), (40.0, 56.0), (80.0, 112.0))
    aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)

    @property
    def priors_per_cell(self) -> int:
        return len(self.scales[0]) * len(self.aspect_ratios)


@dataclass(frozen=True)
class LossGains:
    """YOLACT's loss weights (``bbox_alpha``, ``conf_alpha``, ``mask_alpha``, ``semantic_segmentation_alpha``)."""

    box: float = 1.5
    conf: float = 1.0
    mask: float = 6.125
    semantic: float = 1.0
    pos_iou: float = 0.5
    neg_iou: float = 0.4
    neg_per_pos: int = 3
    masks_per_image: int = 100


class Yolact(nn.Module):
    """Backbone, FPN-lite, prototypes and the shared prediction head."""

    def __init__(self, config: YolactConfig) -> None:
        super().__init__()
        self.config = config
        w, d = config.widths, config.depths
        self.stem = nn.Sequential(ConvBnAct(3, w[0], 3, 2), ConvBnAct(w[0], w[1], 3, 2), SplitBlock(w[1], w[1], d[0]))
        self.down3 = nn.Sequential(ConvBnAct(w[1], w[2], 3, 2), SplitBlock(w[2], w[2], d[1]))
        self.down4 = nn.Sequential(ConvBnAct(w[2], w[3], 3, 2), SplitBlock(w[3], w[3], d[2]))
        self.down5 = nn.Sequential(ConvBnAct(w[3], w[4], 3, 2), SplitBlock(w[4], w[4], d[3]), PoolPyramid(w[4]))
        f = config.fpn_width
        self.lateral = nn.ModuleList(nn.Conv2d(c, f, 1) for c in (w[2], w[3], w[4]))
        self.smooth = nn.ModuleList(ConvBnAct(f, f) for _ in STRIDES)
        pw, k = config.proto_width, config.num_protos
        self.proto = nn.Sequential(
            ConvBnAct(f, pw),
            ConvBnAct(pw, pw),
            nn.Upsample(scale_factor=2.0, mode="nearest"),
            ConvBnAct(pw, pw),
            nn.Conv2d(pw, k, 1),
            nn.ReLU(inplace=True),
        )
        a, hw = config.priors_per_cell, config.head_width
        self.upfeature = ConvBnAct(f, hw)
        self.loc = nn.Conv2d(hw, a * 4, 3, padding=1)
        self.conf = nn.Conv2d(hw, a * (config.num_classes + 1), 3, padding=1)
        self.coef = nn.Conv2d(hw, a * k, 3, padding=1)
        self.semantic = nn.Conv2d(f, config.num_classes, 1)
        # Start with background likely everywhere (~99%): the first steps would otherwise push 10k priors
        # away from a uniform class guess.
        nn.init.zeros_(self.conf.bias)
        self.conf.bias.data.view(a, config.num_classes + 1)[:, 0] = math.log(99 * config.num_classes)
        nn.init.constant_(self.semantic.bias, -4.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``loc (B, N, 4)``, ``conf (B, N, nc + 1)`` logits, ``coef (B, N, K)`` (tanh), ``proto (B, H/4, W/4, K)``
        and the semantic logits ``(B, nc, H/8, W/8)``; priors run level by level, row-major, cell by cell."""
        c3 = self.down3(self.stem(x))
        c4 = self.down4(c3)
        c5 = self.down5(c4)
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + F.interpolate(p5, size=c4.shape[2:], mode="nearest")
        p3 = self.lateral[0](c3) + F.interpolate(p4, size=c3.shape[2:], mode="nearest")
        levels = [s(p) for s, p in zip(self.smooth, (p3, p4, p5))]
        nc, k = self.config.num_classes, self.config.num_protos
        locs, confs, coefs = [], [], []
        for p in levels:
            h = self.upfeature(p)
            b = h.shape[0]
            locs.append(self.loc(h).permute(0, 2, 3, 1).reshape(b, -1, 4))
            confs.append(self.conf(h).permute(0, 2, 3, 1).reshape(b, -1, nc + 1))
            coefs.append(self.coef(h).permute(0, 2, 3, 1).reshape(b, -1, k))
        proto = self.proto(levels[0]).permute(0, 2, 3, 1)
        return torch.cat(locs, 1), torch.cat(confs, 1), torch.cat(coefs, 1).tanh(), proto, self.semantic(levels[0])


def make_priors(config: YolactConfig, input_hw: tuple[int, int]) -> torch.Tensor:
    """Priors ``(N, 4)`` as normalised ``cx, cy, w, h``, in the head's order: level, row, column, scale,
    aspect ratio. Widths and heights are scale * sqrt(ar) and scale / sqrt(ar) over the input's own width
    and height (non-square priors: not the original code's square-anchor behaviour)."""
    h_in, w_in = input_hw
    out = []
    for stride, scales in zip(STRIDES, config.scales):
        gh, gw = math.ceil(h_in / stride), math.ceil(w_in / stride)
        ys, xs = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        centres = torch.stack(((xs.flatten() + 0.5) / gw, (ys.flatten() + 0.5) / gh), -1)  # (cells, 2)
        sizes = torch.tensor(
            [[s * math.sqrt(ar) / w_in, s / math.sqrt(ar) / h_in] for s in scales for ar in config.aspect_ratios]
        )
        a = len(sizes)
        out.append(torch.cat((centres[:, None].expand(-1, a, 2), sizes[None].expand(len(centres), a, 2)), -1))
    return torch.cat([p.reshape(-1, 4) for p in out]).float()


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """SSD decoding (variances 0.1 / 0.2): normalised ``x1, y1, x2, y2``."""
    centre = priors[..., :2] + loc[..., :2] * VARIANCES[0] * priors[..., 2:]
    size = priors[..., 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    return torch.cat((centre - size / 2, centre + size / 2), -1)


def encode_boxes(boxes: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """The inverse of ``decode_boxes`` for normalised ``x1, y1, x2, y2`` targets."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    size = (boxes[..., 2:] - boxes[..., :2]).clamp(min=EPS)
    return torch.cat(
        (
            (centre - priors[..., :2]) / (VARIANCES[0] * priors[..., 2:]),
            torch.log(size / priors[..., 2:]) / VARIANCES[1],
        ),
        -1,
    )


def _pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box of ``a (..., M, 4)`` with every box of ``b (N, 4)`` (xyxy): ``(..., M, N)``."""
    lt = torch.maximum(a[..., :, None, :2], b[:, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[..., None] + area_b - inter + EPS)


@torch.no_grad()
def match(
    priors: torch.Tensor, gt_boxes: torch.Tensor, gt_valid: torch.Tensor, gains: LossGains
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per prior: the matched instance ``(B, N)`` and its state ``(B, N)``: 1 positive, 0 background,
    -1 ignored. ``gt_boxes`` are normalised xyxy. Every valid instance's best prior is positive for it."""
    b, m = gt_valid.shape
    n = priors.shape[0]
    pri = torch.cat((priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2), -1)
    ious = _pairwise_iou(gt_boxes, pri)  # (B, M, N)
    ious = torch.where(gt_valid[..., None], ious, torch.full_like(ious, -1.0))
    best_iou, best_gt = ious.max(1)  # (B, N)
    # Force each instance's best prior to it (YOLACT does this greedily over instances; instances whose
    # best priors collide keep the later one here, which only matters for near-identical boxes).
    best_prior = ious.argmax(2)  # (B, M)
    for j in range(m):
        rows = gt_valid[:, j].nonzero(as_tuple=True)[0]
        best_iou[rows, best_prior[rows, j]] = 2.0
        best_gt[rows, best_prior[rows, j]] = j
    state = torch.zeros(b, n, dtype=torch.long, device=priors.device)
    state[best_iou >= gains.neg_iou] = -1
    state[best_iou >= gains.pos_iou] = 1
    return best_gt, state


def crop_mask(boxes: torch.Tensor, h: int, w: int, padding: int = 1) -> torch.Tensor:
    """YOLACT's crop at prototype resolution: ``(P, h, w)`` 1 inside each normalised box widened by
    ``padding`` prototype pixels (``layers/box_utils.py`` ``crop`` with ``sanitize_coordinates``)."""
    x1 = (torch.minimum(boxes[:, 0], boxes[:, 2]) * w - padding).clamp(min=0)
    x2 = (torch.maximum(boxes[:, 0], boxes[:, 2]) * w + padding).clamp(max=w)
    y1 = (torch.minimum(boxes[:, 1], boxes[:, 3]) * h - padding).clamp(min=0)
    y2 = (torch.maximum(boxes[:, 1], boxes[:, 3]) * h + padding).clamp(max=h)
    cols = torch.arange(w, device=boxes.device, dtype=boxes.dtype)
    rows = torch.arange(h, device=boxes.device, dtype=boxes.dtype)
    in_x = (cols >= x1[:, None]) & (cols < x2[:, None])
    in_y = (rows >= y1[:, None]) & (rows < y2[:, None])
    return (in_y[:, :, None] & in_x[:, None, :]).to(boxes.dtype)


def yolact_loss(
    outputs: tuple[torch.Tensor, ...],
    batch: dict[str, torch.Tensor],
    priors: torch.Tensor,
    gains: LossGains | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """YOLACT's multibox loss on one batch (see the module docstring); returns the total and its parts."""
    gains = gains or LossGains()
    loc, conf, coef, proto, semantic = outputs
    bsz, n, _ = conf.shape
    _, hp, wp, _ = proto.shape
    h_in, w_in = hp * PROTO_STRIDE, wp * PROTO_STRIDE
    scale = torch.tensor([w_in, h_in, w_in, h_in], dtype=loc.dtype, device=loc.device)
    gt_boxes = batch["boxes"] / scale
    gt_valid, gt_classes, gt_masks = batch["valid"], batch["classes"], batch["masks"]
    gt_index, state = match(priors, gt_boxes, gt_valid, gains)
    pos = state == 1
    num_pos = pos.sum().clamp(min=1).float()
    matched = gt_boxes.gather(1, gt_index[..., None].expand(-1, -1, 4))  # (B, N, 4)

    loss_box = F.smooth_l1_loss(loc[pos], encode_boxes(matched[pos], priors.expand(bsz, -1, -1)[pos]), reduction="sum")

    # OHEM: the background loss ranks the negatives; keep neg_per_pos hardest per positive, per image.
    target = torch.where(pos, gt_classes.gather(1, gt_index).clamp(min=0) + 1, torch.zeros_like(gt_index))
    with torch.no_grad():
        background = torch.logsumexp(conf, -1) - conf[..., 0]
        background[state != 0] = -1.0  # positives and ignored priors are never negatives
        rank = background.argsort(1, descending=True).argsort(1)
        num_neg = (gains.neg_per_pos * pos.sum(1, keepdim=True)).clamp(max=n - 1)
        neg = (rank < num_neg) & (state == 0)
    chosen = pos | neg
    loss_conf = F.cross_entropy(conf[chosen], target[chosen], reduction="sum")

    loss_mask = conf.sum() * 0
    for i in range(bsz):
        idx = pos[i].nonzero(as_tuple=True)[0]
        if len(idx) > gains.masks_per_image:  # as YOLACT: a random subset when an image has too many
            idx = idx[torch.randperm(len(idx), device=idx.device)[: gains.masks_per_image]]
        if len(idx) == 0:
            continue
        inst = gt_index[i, idx]
        logits = (proto[i].reshape(-1, proto.shape[-1]) @ coef[i, idx].t()).t().reshape(-1, hp, wp)
        bce = F.binary_cross_entropy_with_logits(logits, gt_masks[i, inst], reduction="none")
        boxes = gt_boxes[i, inst]
        crop = crop_mask(boxes, hp, wp)
        area = ((boxes[:, 2] - boxes[:, 0]) * wp * (boxes[:, 3] - boxes[:, 1]) * hp).clamp(min=1.0)
        loss_mask = loss_mask + ((bce * crop).sum((1, 2)) / area).sum()

    # Semantic segmentation (auxiliary, YOLACT's use_semantic_segmentation_loss): each class's union of
    # instance masks, max-pooled to the P3 grid.
    _, nc, hs, ws = semantic.shape
    with torch.no_grad():
        pooled = F.adaptive_max_pool2d(gt_masks.flatten(0, 1)[:, None], (hs, ws)).view(bsz, -1, hs, ws)
        onehot = F.one_hot(gt_classes.clamp(min=0), nc).float() * gt_valid[..., None]  # (B, M, nc)
        seg_target = torch.einsum("bmc,bmhw->bchw", onehot, (pooled > 0.5).float()).clamp(max=1.0)
    loss_sem = F.binary_cross_entropy_with_logits(semantic, seg_target, reduction="sum") / (hs * ws) / bsz

    total = (gains.box * loss_box + gains.conf * loss_conf + gains.mask * loss_mask) / num_pos
    total = total + gains.semantic * loss_sem
    parts = {
        "box": float(loss_box.detach() / num_pos),
        "conf": float(loss_conf.detach() / num_pos),
        "mask": float(loss_mask.detach() / num_pos),
        "sem": float(loss_sem.detach()),
        "pos": float(num_pos) / bsz,
    }
    return total, parts


class YolactExport(nn.Module):
    """The inference graph: priors and box decoding baked in (the OpenVINO-model-zoo YOLACT layout)."""

    def __init__(self, net: Yolact, input_hw: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("priors", make_priors(net.config, input_hw)[None])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        loc, conf, coef, proto, _ = self.net(x)
        return decode_boxes(loc, self.priors), conf.softmax(-1), coef, proto


def export_yolact(model: Yolact, path: str | Path, input_hw: tuple[int, int], names: tuple[str, ...]) -> Path:
    """Write ``model`` as FP32 ONNX: input ``images [1, 3, H, W]`` (stretched RGB, ImageNet-normalised),
    outputs ``boxes [1, N, 4]``, ``conf [1, N, nc + 1]``, ``mask [1, N, K]``, ``proto [1, H/4, W/4, K]``;
    metadata ``names``, ``imgsz``, ``task``, ``family``. Batch norms are folded into the convolutions."""
    wrapper = YolactExport(copy.deepcopy(model).cpu().eval(), input_hw).eval()
    meta = {
        "names": repr(dict(enumerate(names))),
        "imgsz": repr(list(input_hw)),
        "task": "segment",
        "family": "yolact",
        "description": "edgeseg YOLACT-style model: synthetic factory parts instance segmentation",
    }
    outputs = ("boxes", "conf", "mask", "proto")
    return write_onnx(wrapper, path, input_hw, "images", outputs, meta)


def build(num_classes: int, input_hw: tuple[int, int]) -> Yolact:
    """The default network for ``num_classes`` (priors follow the input size, so it is not needed here)."""
    return Yolact(YolactConfig(num_classes=num_classes))


@functools.lru_cache(maxsize=4)
def _priors(config: YolactConfig, input_hw: tuple[int, int]) -> torch.Tensor:
    return make_priors(config, input_hw)


def loss(outputs: tuple[torch.Tensor, ...], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """``yolact_loss`` with the default network's priors for the batch's input size."""
    config = YolactConfig(num_classes=outputs[1].shape[-1] - 1)
    _, hp, wp, _ = outputs[3].shape
    return yolact_loss(outputs, batch, _priors(config, (hp * PROTO_STRIDE, wp * PROTO_STRIDE)))


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Training images (RGB in 0..1, as ``data.collate`` gives them) into the network's input."""
    mean = torch.tensor(PREPROCESS.mean, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(PREPROCESS.std, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * 255.0 - mean) / std
