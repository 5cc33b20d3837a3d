"""A small SOLOv2-style network and its training loss, for ``edgeseg train --head solov2``.

Box-free instance segmentation as in SOLOv2 (Wang et al., 2020, and MMDetection's ``SOLOV2Head``):
every feature level is resized to an ``S x S`` grid; each grid cell predicts class scores (category
branch) and ``E`` parameters of a dynamic 1x1 convolution (kernel branch) that, applied to one shared
mask feature map at 1/4 resolution, gives the mask of the instance whose centre falls in that cell.

Training targets follow SOLO: an instance is positive on the cells of its centre region (the centre of
mass of its mask, +- ``sigma`` / 2 of its box, at most one cell from the centre cell) on every level
whose scale range holds ``sqrt(w * h)`` of its box; focal loss on the category grids, Dice loss on the
masks of positive cells.

The network's inputs follow MMDetection's preprocessing (keep-ratio resize padded bottom-right, RGB,
``(pixel - mean) / std``, padding 0 after normalization); the first thing ``forward`` does is map them
back to the ``pixel / 255`` scale the backbone was made for, so the ONNX export takes what the SOLOv2
family's preprocessing gives.

The export (``export_solov2``) is the raw-head layout edgeseg's SOLOv2 decoder reads:
``cate_preds [1, G, C]`` sigmoid scores (G = sum of S*S over levels, row-major within a level, levels in
order), ``kernel_preds [1, G, E]``, ``mask_feats [1, E, H/4, W/4]``; metadata ``grids``, ``strides``,
``names``, ``imgsz``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ..spec import Preprocess
from ..synthparts import SceneConfig
from .config import TrainConfig
from .data import Sample
from .export import write_onnx
from .net import ConvBnAct, PoolPyramid, SplitBlock

# MMDetection's ImageNet mean / std in RGB order (pixel units), as its SOLOv2 configs declare.
MMDET_MEAN = (123.675, 116.28, 103.53)
MMDET_STD = (58.395, 57.12, 57.375)
SOLOV2_PREPROCESS = Preprocess(resize="keep_ratio", pad_value=None, mean=MMDET_MEAN, std=MMDET_STD, rgb=True)
MASK_STRIDE = 4


@dataclass(frozen=True)
class SoloConfig:
    """Sizes of the network and the SOLO target assignment.

    The grids and scale ranges suit the synthetic parts at a 256x320 input: parts are ~25-80 px
    (``sqrt(w * h)`` of the box), so three levels with overlapping ranges give every part one or two levels.
    """

    num_classes: int
    grids: tuple[int, ...] = (24, 16, 12)
    strides: tuple[int, ...] = (8, 16, 32)
    scale_ranges: tuple[tuple[float, float], ...] = ((1.0, 48.0), (32.0, 72.0), (56.0, 2048.0))
    sigma: float = 0.2  # centre region: +- sigma / 2 of the box around the mask's centre of mass
    kernel_channels: int = 32  # E: parameters of each dynamic 1x1 convolution (= mask feature channels)
    widths: tuple[int, int, int, int, int] = (16, 32, 64, 96, 128)
    depths: tuple[int, int, int, int] = (1, 2, 2, 1)
    head_width: int = 64
    mask_width: int = 64
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    mask_weight: float = 3.0


def _coords(x: torch.Tensor) -> torch.Tensor:
    """Two channels of normalised x and y coordinates in [-1, 1] (SOLO's CoordConv input)."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
    xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat((xs, ys), 1)


class SoloV2(nn.Module):
    """Backbone + PAN-style FPN-lite (strides 8/16/32), per-level category and kernel branches on S x S
    grids, and a unified mask-feature branch at stride 4.

    The backbone and neck have the module names of PartSeg's (``net.PartSeg``), so PartSeg's trained
    weights can start them (``load_partseg_backbone``); their batch norms are then frozen.
    """

    def __init__(self, config: SoloConfig) -> None:
        super().__init__()
        self.config = config
        w, d = config.widths, config.depths
        self.stem = nn.Sequential(ConvBnAct(3, w[0], 3, 2), ConvBnAct(w[0], w[1], 3, 2), SplitBlock(w[1], w[1], d[0]))
        self.down3 = nn.Sequential(ConvBnAct(w[1], w[2], 3, 2), SplitBlock(w[2], w[2], d[1]))
        self.down4 = nn.Sequential(ConvBnAct(w[2], w[3], 3, 2), SplitBlock(w[3], w[3], d[2]))
        self.down5 = nn.Sequential(ConvBnAct(w[3], w[4], 3, 2), SplitBlock(w[4], w[4], d[3]), PoolPyramid(w[4]))
        self.top_down4 = SplitBlock(w[4] + w[3], w[3])
        self.top_down3 = SplitBlock(w[3] + w[2], w[2])
        self.reduce3 = ConvBnAct(w[2], w[2], 3, 2)
        self.bottom_up4 = SplitBlock(w[2] + w[3], w[3])
        self.reduce4 = ConvBnAct(w[3], w[3], 3, 2)
        self.bottom_up5 = SplitBlock(w[3] + w[4], w[4])
        # Mask features: stride-8 features upsampled to stride 4 (PartSeg's prototype branch, trained on),
        # then a residual refinement by 3x3 convolutions over [features, stride-4 stem features, x, y]:
        # SOLOv2's CoordConv on the mask branch (without position one kernel could not tell two identical
        # parts apart) with the spatial context and fine edges that PartSeg's prototypes, made to be
        # cropped to a box, lack (no box crops a SOLO mask). It starts as the identity.
        mw, e = config.mask_width, config.kernel_channels
        self.proto = nn.Sequential(
            ConvBnAct(w[2], mw), nn.Upsample(scale_factor=2.0, mode="nearest"), ConvBnAct(mw, mw), ConvBnAct(mw, e, 1)
        )
        self.mask_refine = nn.Sequential(ConvBnAct(e + w[1] + 2, mw), ConvBnAct(mw, mw), nn.Conv2d(mw, e, 1))
        nn.init.zeros_(self.mask_refine[-1].weight)
        nn.init.zeros_(self.mask_refine[-1].bias)
        hw, nc = config.head_width, config.num_classes
        level_widths = (w[2], w[3], w[4])

        def branch(c_in: int, c_out: int, k: int) -> nn.Sequential:
            return nn.Sequential(ConvBnAct(c_in, hw), ConvBnAct(hw, hw), nn.Conv2d(hw, c_out, k, 1, k // 2))

        self.kernel_heads = nn.ModuleList(branch(c + 2, e, 1) for c in level_widths)
        self.cate_heads = nn.ModuleList(branch(c, nc, 3) for c in level_widths)
        for head in self.cate_heads:  # every cell starts at ~1% score, as focal-loss heads do
            nn.init.constant_(head[-1].bias, -math.log(99))
        self.register_buffer("pixel_scale", torch.tensor(MMDET_STD).view(1, 3, 1, 1) / 255.0, persistent=False)
        self.register_buffer("pixel_shift", torch.tensor(MMDET_MEAN).view(1, 3, 1, 1) / 255.0, persistent=False)
        self.frozen_norms: list[nn.Module] = []

    def backbone_modules(self) -> list[nn.Module]:
        """The modules whose weights PartSeg's can start (backbone, neck, mask features)."""
        names = ("stem", "down3", "down4", "down5", "top_down4", "top_down3", "reduce3", "bottom_up4")
        return [getattr(self, n) for n in (*names, "reduce4", "bottom_up5", "proto")]

    def train(self, mode: bool = True) -> SoloV2:
        """Train mode, except the frozen batch norms (started from PartSeg), which keep their statistics."""
        super().train(mode)
        for m in self.frozen_norms:
            m.eval()
        return self

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The part started from PartSeg and frozen in training: the stride-4 stem features c2 and the level
        features p3, p4, p5. ``x`` is the normalised input ``(pixel - mean) / std``, RGB."""
        x = x * self.pixel_scale + self.pixel_shift
        c2 = self.stem(x)
        c3 = self.down3(c2)
        c4 = self.down4(c3)
        c5 = self.down5(c4)
        t4 = self.top_down4(torch.cat((F.interpolate(c5, scale_factor=2.0, mode="nearest"), c4), 1))
        p3 = self.top_down3(torch.cat((F.interpolate(t4, scale_factor=2.0, mode="nearest"), c3), 1))
        p4 = self.bottom_up4(torch.cat((self.reduce3(p3), t4), 1))
        p5 = self.bottom_up5(torch.cat((self.reduce4(p4), c5), 1))
        return c2, p3, p4, p5

    def mask_features(self, c2: torch.Tensor, p3: torch.Tensor) -> torch.Tensor:
        """The mask features ``(B, E, H/4, W/4)``: PartSeg's prototypes of p3, refined."""
        base = self.proto(p3)
        return base + self.mask_refine(torch.cat((base, c2, _coords(base)), 1))

    def heads(
        self, c2: torch.Tensor, p3: torch.Tensor, p4: torch.Tensor, p5: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Per level category logits ``(B, C, S, S)`` and kernels ``(B, E, S, S)``; mask features."""
        cates, kernels = [], []
        for p, s, kh, ch in zip((p3, p4, p5), self.config.grids, self.kernel_heads, self.cate_heads):
            with_xy = torch.cat((p, _coords(p)), 1)
            kernels.append(kh(F.interpolate(with_xy, size=(s, s), mode="bilinear", align_corners=False)))
            cates.append(ch(F.interpolate(p, size=(s, s), mode="bilinear", align_corners=False)))
        return cates, kernels, self.mask_features(c2, p3)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Per level category logits ``(B, C, S, S)`` and kernels ``(B, E, S, S)``; mask features
        ``(B, E, H/4, W/4)``. ``x`` is the normalised input ``(pixel - mean) / std``, RGB."""
        return self.heads(*self.trunk(x))


def build_model(num_classes: int, init: str | Path | None = "partseg") -> SoloV2:
    """The network of ``edgeseg train --head solov2``: backbone, neck and mask features started from the
    bundled PartSeg model (``init``: a zoo name or an ONNX path; None starts from random weights)."""
    model = SoloV2(SoloConfig(num_classes=num_classes))
    if init is not None:
        from .. import zoo

        path = Path(init) if Path(init).suffix == ".onnx" else zoo.resolve(str(init), progress=False)
        load_partseg_backbone(model, path)
    return model


def load_partseg_backbone(model: SoloV2, onnx_path: str | Path) -> int:
    """Start the backbone, neck and mask-feature convolutions from a PartSeg ONNX export (whose batch
    norms were folded into the convolutions) and freeze those batch norms; returns the count of
    convolutions loaded. Needs the ``onnx`` package.

    The ONNX node names carry the module scopes (``/net/stem/stem.2/blocks.0/body/body.0/body.0.0/Conv``),
    from which the module path is rebuilt; every shape is checked.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_path))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    modules = dict(model.named_modules())
    wanted = {id(m) for top in model.backbone_modules() for m in top.modules()}
    loaded = 0
    for node in proto.graph.node:
        if node.op_type != "Conv" or not node.name.startswith("/net/"):
            continue
        scopes = node.name.split("/")[2:-1]
        name = scopes[0]
        for prev, scope in zip(scopes, scopes[1:]):
            name += scope[len(prev) :] if scope.startswith(prev + ".") else "." + scope
        # "stem.0.0" is the convolution inside ConvBnAct "stem.0": its batch norm is "stem.0.1".
        conv = modules.get(name)
        if conv is None or id(conv) not in wanted or not isinstance(conv, nn.Conv2d):
            continue
        weight = torch.from_numpy(inits[node.input[1]].copy())
        bias = torch.from_numpy(inits[node.input[2]].copy())
        if tuple(weight.shape) != tuple(conv.weight.shape):
            raise ValueError(f"{onnx_path}: {node.name} has weight {tuple(weight.shape)}, {name} needs "
                             f"{tuple(conv.weight.shape)}")  # fmt: skip
        norm = modules[name[: -len(".0")] + ".1"]
        with torch.no_grad():
            conv.weight.copy_(weight)
            # Folded bias into a frozen batch norm that is the identity plus that bias.
            norm.weight.fill_(1.0)
            norm.bias.copy_(bias)
            norm.running_mean.zero_()
            norm.running_var.fill_(1.0 - norm.eps)
        model.frozen_norms.append(norm)
        loaded += 1
    if loaded == 0:
        raise ValueError(f"{onnx_path}: no PartSeg convolutions found to start the backbone from")
    return loaded


# --- targets and loss -------------------------------------------------------------------------------


@torch.no_grad()
def solo_targets(
    config: SoloConfig,
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    gt_valid: torch.Tensor,
    gt_masks: torch.Tensor,
    input_hw: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """SOLO's targets for a batch: class per cell ``(B, G)`` (-1 background), and for the positive cells
    their batch index ``(P,)``, grid index ``(P,)`` and instance index ``(P,)`` into ``gt_masks``.

    Instances are visited largest first so a smaller one wins a cell both claim (as MMDetection's order
    by area does); ``gt_masks`` are the soft instance masks at 1/4 resolution.
    """
    b = gt_boxes.shape[0]
    h_in, w_in = input_hw
    total = sum(s * s for s in config.grids)
    labels = torch.full((b, total), -1, dtype=torch.long)
    owner = torch.full((b, total), -1, dtype=torch.long)
    hp, wp = gt_masks.shape[2:]
    ys = (torch.arange(hp, dtype=torch.float32) + 0.5) * (h_in / hp)
    xs = (torch.arange(wp, dtype=torch.float32) + 0.5) * (w_in / wp)
    for i in range(b):
        idx = gt_valid[i].nonzero(as_tuple=True)[0]
        if len(idx) == 0:
            continue
        boxes = gt_boxes[i, idx]
        wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1.0)
        scale = wh.prod(1).sqrt()
        masks = gt_masks[i, idx]
        mass = masks.sum((1, 2)).clamp(min=1e-6)
        cy = (masks.sum(2) * ys).sum(1) / mass
        cx = (masks.sum(1) * xs).sum(1) / mass
        order = torch.argsort(scale, descending=True)
        offset = 0
        for s, (lo, hi) in zip(config.grids, config.scale_ranges):
            for j in order.tolist():
                if not (lo <= float(scale[j]) <= hi) or float(mass[j]) < 1.0:
                    continue
                half_w, half_h = 0.5 * config.sigma * float(wh[j, 0]), 0.5 * config.sigma * float(wh[j, 1])
                # Cells by floor(coordinate / cell size), as SOLO: the centre cell and the centre region.
                ci = min(s - 1, int(float(cy[j]) / h_in * s))
                cj = min(s - 1, int(float(cx[j]) / w_in * s))
                top = max(0, int((float(cy[j]) - half_h) / h_in * s), ci - 1)
                down = min(s - 1, int((float(cy[j]) + half_h) / h_in * s), ci + 1)
                left = max(0, int((float(cx[j]) - half_w) / w_in * s), cj - 1)
                right = min(s - 1, int((float(cx[j]) + half_w) / w_in * s), cj + 1)
                for r in range(top, down + 1):
                    cells = offset + r * s + torch.arange(left, right + 1)
                    labels[i, cells] = int(gt_classes[i, idx[j]])
                    owner[i, cells] = int(idx[j])
            offset += s * s
    pos_b, pos_g = (owner >= 0).nonzero(as_tuple=True)
    return labels, pos_b, pos_g, owner[pos_b, pos_g]


def dice_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """SOLO's Dice loss per mask, ``1 - 2 sum(p t) / (sum(p^2) + sum(t^2))``, on ``(P, H, W)`` probabilities."""
    p, t = pred.flatten(1), target.flatten(1)
    return 1 - 2 * (p * t).sum(1) / ((p * p).sum(1) + (t * t).sum(1) + eps)


def solo_loss(model: SoloV2, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of ``model`` on a batch from ``data.collate`` (images ``pixel / 255`` RGB, padding holding the
    mean): SOLO targets, then ``loss_from_outputs``."""
    images = normalize(batch["images"] * 255.0)
    cates, kernels, feats = model(images)
    labels, pos_b, pos_g, inst = solo_targets(
        model.config, batch["boxes"], batch["classes"], batch["valid"], batch["masks"], tuple(images.shape[2:])
    )
    return loss_from_outputs(model.config, cates, kernels, feats, labels, pos_b, pos_g, batch["masks"][pos_b, inst])


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """``(pixel - mean) / std`` of ``(B, 3, H, W)`` RGB pixels (0..255), as the SOLOv2 family's input."""
    mean = torch.tensor(MMDET_MEAN, dtype=pixels.dtype).view(1, 3, 1, 1)
    std = torch.tensor(MMDET_STD, dtype=pixels.dtype).view(1, 3, 1, 1)
    return (pixels - mean) / std


def loss_from_outputs(
    config: SoloConfig,
    cates: list[torch.Tensor],
    kernels: list[torch.Tensor],
    feats: torch.Tensor,
    labels: torch.Tensor,
    pos_b: torch.Tensor,
    pos_g: torch.Tensor,
    pos_masks: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Focal loss on the category grids (normalised by positives + 1) and Dice loss on the masks of the
    positive cells. ``labels (B, G)`` class per cell or -1; positive cell ``k`` is grid cell ``pos_g[k]``
    of image ``pos_b[k]``, its target mask ``pos_masks[k]`` (soft, at the mask features' resolution)."""
    cate = torch.cat([c.flatten(2) for c in cates], 2).transpose(1, 2)  # (B, G, C)
    kern = torch.cat([k.flatten(2) for k in kernels], 2).transpose(1, 2)  # (B, G, E)
    onehot = torch.zeros_like(cate)
    fg = labels >= 0
    onehot[fg, labels[fg]] = 1.0
    num_pos = int(fg.sum())
    loss_cate = _focal(cate, onehot, config.focal_alpha, config.focal_gamma) / (num_pos + 1)
    if num_pos:
        # One dynamic 1x1 convolution per positive cell: its kernel dotted with its image's mask features,
        # as one matmul per image (gathering a feature stack per positive cell would take gigabytes).
        # pos_b is sorted, so the rows come out in the order of pos_masks.
        flat = feats.flatten(2)
        logits = torch.cat([kern[b, pos_g[pos_b == b]] @ flat[b] for b in range(flat.shape[0])])
        loss_mask = dice_loss(logits.sigmoid(), pos_masks.flatten(1)).mean()
    else:
        loss_mask = kern.sum() * 0
    total = loss_cate + config.mask_weight * loss_mask
    return total, {"cate": float(loss_cate.detach()), "mask": float(loss_mask.detach()), "pos": float(num_pos)}


def _focal(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Sigmoid focal loss, summed."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    a_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (a_t * (1 - p_t).pow(gamma) * ce).sum()


# --- training: frozen trunk, cached features -------------------------------------------------------


def trunk_modules(model: SoloV2) -> list[nn.Module]:
    """The modules frozen in training (started from PartSeg): all of ``SoloV2.trunk``; the prototype
    convolutions, also started from PartSeg, train on with the mask refinement."""
    return [m for m in model.backbone_modules() if m is not model.proto]


def _image_targets(config: SoloConfig, sample: Sample) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's SOLO targets (cell classes ``(G,)``, positive cells, their instance indices)."""
    k = len(sample.classes)
    labels, _, pos_g, inst = solo_targets(
        config,
        torch.from_numpy(sample.boxes).view(1, k, 4),
        torch.from_numpy(sample.classes).view(1, k),
        torch.ones(1, k, dtype=torch.bool),
        torch.from_numpy(sample.masks).float().div_(255.0).view(1, k, *sample.masks.shape[1:]),
        tuple(sample.image.shape[1:]),
    )
    return labels[0], pos_g, inst


@torch.no_grad()
def _cache_trunk(model: SoloV2, samples: list[Sample], progress: bool) -> list[torch.Tensor]:
    """The frozen trunk's outputs for every sample, in float16 (c2, p3, p4, p5)."""
    from tqdm import tqdm

    model.eval()
    parts: list[list[torch.Tensor]] = [[], [], [], []]
    for start in tqdm(range(0, len(samples), 16), desc="trunk features", disable=not progress, leave=False):
        images = torch.from_numpy(np.stack([s.image for s in samples[start : start + 16]])).float()
        for store, out in zip(parts, model.trunk(normalize(images))):
            store.append(out.half())
    return [torch.cat(p) for p in parts]


def train_solov2(
    out_dir: str | Path,
    config: TrainConfig,
    scene_config: SceneConfig | None = None,
    resume: bool = True,
    progress: bool = True,
    samples: list[Sample] | None = None,
    init: str | Path | None = "partseg",
) -> SoloV2:
    """Train the SOLOv2-style heads on synthetic scenes; returns the weight-averaged model, in eval mode.

    The trunk (backbone and neck) starts from PartSeg and stays frozen, so its outputs are computed once
    per scene and cached; each step then runs only the mask-feature branch (PartSeg's prototype
    convolutions, trained on, and their refinement) and the category and kernel branches (no flips: the
    cache holds each scene once). AdamW with warmup and cosine decay, an EMA of
    the weights, a checkpoint every ``config.checkpoint_every`` steps; ``resume`` continues from it.
    """
    import json
    import math
    import os
    import time

    from tqdm import tqdm

    from ..synthparts import CLASSES
    from .data import build_split
    from .trainer import CHECKPOINT, WeightAverage, load_checkpoint

    config.validate()
    scene_config = scene_config or SceneConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    state = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    settings = {**dataclasses.asdict(config), "head": "solov2"}
    if state is not None and {**state["train_config"], "head": state.get("head")} != settings:
        raise ValueError(
            f"{ckpt_path} was written by another run ({state['train_config']}, head {state.get('head')!r}); "
            "resume with its settings, or pass a new output folder (or --no-resume) to start over"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model = build_model(len(CLASSES), init=init)
    for module in trunk_modules(model):
        module.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    ema = WeightAverage(model, config.ema_decay)
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        ema.updates = state["ema_updates"]
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    steps_per_epoch = max(1, (len(samples) if samples is not None else config.train_images) // config.batch)
    total = steps_per_epoch * config.epochs
    if step >= total:  # a finished run: nothing to render or cache
        return ema.model.eval()
    if samples is None:
        workers = min(2, os.cpu_count() or 1)
        samples = build_split(
            config.train_images, config.seed, config.input_hw, scene_config, workers, progress, SOLOV2_PREPROCESS
        )
    cache = _cache_trunk(model, samples, progress)
    targets = [_image_targets(model.config, s) for s in samples]

    def lr_at(i: int) -> float:
        if i < config.warmup_steps:
            return config.lr * (i + 1) / config.warmup_steps
        t = (i - config.warmup_steps) / max(1, total - config.warmup_steps)
        return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))

    def checkpoint() -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "ema": ema.model.state_dict(),
                "ema_updates": ema.updates,
                "optimizer": optimizer.state_dict(),
                "step": step,
                "train_config": dataclasses.asdict(config),
                "head": "solov2",
                "classes": list(CLASSES),
            },
            tmp,
        )
        os.replace(tmp, ckpt_path)

    model.train()
    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=not progress)
    started = time.perf_counter()
    with (out / "train_log.jsonl").open("a") as log:
        try:
            while step < total:
                epoch, pos = divmod(step, steps_per_epoch)
                order = np.random.default_rng([config.seed, epoch]).permutation(len(samples))
                idx = order[pos * config.batch : (pos + 1) * config.batch]
                labels = torch.stack([targets[i][0] for i in idx])
                pos_b = torch.cat([torch.full_like(targets[i][1], b) for b, i in enumerate(idx)])
                pos_g = torch.cat([targets[i][1] for i in idx])
                masks = [torch.from_numpy(samples[i].masks[targets[i][2].numpy()]) for i in idx]
                pos_masks = torch.cat(masks).float().div_(255.0)
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step)
                cates, kernels, feats = model.heads(*(c[torch.from_numpy(idx)].float() for c in cache))
                loss, parts = loss_from_outputs(model.config, cates, kernels, feats, labels, pos_b, pos_g, pos_masks)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {float(loss)} at step {step}; lower --lr")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 10.0)
                optimizer.step()
                ema.update(model)
                step += 1
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()}, refresh=False)
                if step % 20 == 0 or step == total:
                    entry = {"step": step, "epoch": epoch, "lr": lr_at(step - 1), **parts}
                    entry["elapsed_s"] = round(time.perf_counter() - started, 1)
                    log.write(json.dumps(entry) + "\n")
                    log.flush()
                if step % config.checkpoint_every == 0 or step == total:
                    checkpoint()
        except KeyboardInterrupt:
            checkpoint()
            raise KeyboardInterrupt(f"interrupted at step {step}; run the same command again to resume") from None
        finally:
            bar.close()
    return ema.model.eval()


# --- inference, torch side (training guidance; the SDK decodes in its C++ core) ---------------------


class SoloExport(nn.Module):
    """The exported graph: flattened sigmoid category scores, kernels and mask features."""

    def __init__(self, net: SoloV2) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cates, kernels, feats = self.net(x)
        cate = torch.cat([c.flatten(2) for c in cates], 2).transpose(1, 2).sigmoid()
        kern = torch.cat([k.flatten(2) for k in kernels], 2).transpose(1, 2)
        return cate, kern, feats


def export_solov2(model: SoloV2, path: str | Path, input_hw: tuple[int, int], names: tuple[str, ...]) -> Path:
    """Write ``model`` as ONNX in the SOLOv2 raw-head layout: input ``input [1, 3, H, W]`` (normalised
    RGB), outputs ``cate_preds [1, G, C]``, ``kernel_preds [1, G, E]``, ``mask_feats [1, E, H/4, W/4]``;
    metadata ``grids``, ``strides``, ``names``, ``imgsz``, ``cate_activation`` ("sigmoid"), ``mask_stride``."""
    wrapper = SoloExport(copy.deepcopy(model).cpu().eval())
    c = model.config
    meta = {
        "names": repr(dict(enumerate(names))),
        "imgsz": repr(list(input_hw)),
        "grids": repr(list(c.grids)),
        "strides": repr(list(c.strides)),
        "cate_activation": "sigmoid",
        "mask_stride": str(MASK_STRIDE),
        "task": "segment",
        "description": "edgeseg SoloParts: SOLOv2-style instance segmentation of synthetic factory parts",
    }
    outputs = ("cate_preds", "kernel_preds", "mask_feats")
    return write_onnx(wrapper, path, input_hw, "input", outputs, meta)


def matrix_nms(
    masks: torch.Tensor, labels: torch.Tensor, scores: torch.Tensor, sigma: float = 2.0, kernel: str = "gaussian"
) -> torch.Tensor:
    """Matrix NMS (SOLOv2): decayed scores of ``masks (N, H, W)`` binary, sorted by score descending."""
    n = len(scores)
    if n == 0:
        return scores
    flat = masks.flatten(1).float()
    inter = flat @ flat.t()
    areas = flat.sum(1).expand(n, n)
    iou = (inter / (areas + areas.t() - inter).clamp(min=1e-6)).triu(1)
    same = (labels[:, None] == labels[None, :]).float().triu(1)
    decay_iou = iou * same
    comp = decay_iou.max(0).values.expand(n, n).t()
    if kernel == "gaussian":
        decay = torch.exp(-sigma * decay_iou**2) / torch.exp(-sigma * comp**2)
    else:
        decay = (1 - decay_iou) / (1 - comp)
    return scores * decay.min(0).values


@torch.no_grad()
def decode(
    cate: torch.Tensor,
    kern: torch.Tensor,
    feats: torch.Tensor,
    config: SoloConfig,
    score_thr: float = 0.1,
    mask_thr: float = 0.5,
    nms_pre: int = 500,
    update_thr: float = 0.05,
    max_det: int = 100,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SOLOv2's postprocess for one image (scores already sigmoid; ``cate (G, C)``, ``kern (G, E)``,
    ``feats (E, h, w)``): point NMS, threshold, dynamic convolution, area filter, mask rescoring, Matrix
    NMS. Returns soft masks ``(K, h, w)`` at feature resolution, labels and scores."""
    pieces, offset = [], 0
    for s in config.grids:  # point NMS: keep a cell only where it is the 2x2 local maximum
        grid = cate[offset : offset + s * s].t().reshape(1, -1, s, s)
        hmax = F.max_pool2d(grid, 2, stride=1, padding=1)[:, :, :-1, :-1]
        pieces.append((grid * (hmax == grid)).reshape(-1, s * s).t())
        offset += s * s
    cate = torch.cat(pieces)
    strides = torch.cat([torch.full((s * s,), float(st)) for s, st in zip(config.grids, config.strides)])
    keep = (cate > score_thr).nonzero()
    empty = feats.new_zeros((0, *feats.shape[1:]))
    if len(keep) == 0:
        return empty, keep.new_zeros(0), cate.new_zeros(0)
    cells, labels = keep[:, 0], keep[:, 1]
    scores = cate[cells, labels]
    masks = torch.einsum("ne,ehw->nhw", kern[cells], feats).sigmoid()
    binary = masks > mask_thr
    area = binary.flatten(1).sum(1).float()
    ok = area > strides[cells]
    if not ok.any():
        return empty, labels[:0], scores[:0]
    masks, binary, area, labels, scores = masks[ok], binary[ok], area[ok], labels[ok], scores[ok]
    scores = scores * (masks * binary).flatten(1).sum(1) / area
    order = scores.argsort(descending=True)[:nms_pre]
    masks, binary, labels, scores = masks[order], binary[order], labels[order], scores[order]
    scores = matrix_nms(binary, labels, scores)
    ok = scores >= update_thr
    masks, labels, scores = masks[ok], labels[ok], scores[ok]
    order = scores.argsort(descending=True)[:max_det]
    return masks[order], labels[order], scores[order]


def evaluate_torch(
    model: SoloV2, scenes: list, input_hw: tuple[int, int], score_thr: float = 0.1
) -> tuple[float, float]:
    """Mask mAP50-95 and mAP50 of ``model`` decoded in torch on rendered ``scenes`` (a training-side
    split, never the held-out one), with masks resized back to the scene resolution."""
    import contextlib
    import io

    import cv2
    from pycocotools import mask as mask_util

    from ..evaluate import _coco_api
    from ..preprocess import fit, to_input

    coco_cls, eval_cls, _ = _coco_api("pycocotools")
    images, anns, results = [], [], []
    model = model.eval()
    for i, scene in enumerate(scenes):
        h, w = scene.image.shape[:2]
        images.append({"id": i + 1, "width": w, "height": h, "file_name": f"{i}.png"})
        for k in range(len(scene)):
            m = np.asfortranarray((scene.instance_map == k + 1).astype(np.uint8))
            rle = mask_util.encode(m)
            rle["counts"] = rle["counts"].decode()
            x1, y1, x2, y2 = (float(v) for v in scene.boxes[k])
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(scene.classes[k]) + 1,
                         "segmentation": rle, "area": float(m.sum()), "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "iscrowd": 0})  # fmt: skip
        canvas, lb = fit(scene.image, input_hw, SOLOV2_PREPROCESS)
        x = np.zeros((3, *input_hw), dtype=np.float32)
        to_input(canvas, x, pre=SOLOV2_PREPROCESS, content=lb)
        cate, kern, feats = SoloExport(model)(torch.from_numpy(x)[None])
        masks, labels, scores = decode(cate[0], kern[0], feats[0], model.config, score_thr=score_thr)
        if len(scores) == 0:
            continue
        up = F.interpolate(masks[None], scale_factor=float(MASK_STRIDE), mode="bilinear", align_corners=False)[0]
        up = up[:, : lb.new_h, : lb.new_w].numpy()
        for m, c, s in zip(up, labels.tolist(), scores.tolist()):
            full = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
            if not full.any():
                continue
            rle = mask_util.encode(np.asfortranarray(full.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode()
            results.append({"image_id": i + 1, "category_id": c + 1, "segmentation": rle, "score": float(s)})
    if not results:
        return 0.0, 0.0
    cats = [{"id": c + 1, "name": str(c)} for c in range(model.config.num_classes)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls()
        gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        gt.createIndex()
        ev = eval_cls(gt, gt.loadRes(results), "segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0]), float(ev.stats[1])
