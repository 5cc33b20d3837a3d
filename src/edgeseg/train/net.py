"""PartSeg: a compact YOLOv8-seg-style network whose ONNX export is the raw YOLOv8-seg head layout.

Training sees per-level logits; export sees ``[1, 4 + nc + 32, N]`` (cx, cy, w, h in input pixels,
class probabilities, mask coefficients) and ``[1, 32, H/4, W/4]`` prototypes, so the SDK's existing
decoder, NMS and mask assembly serve it with no special case.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

STRIDES = (8, 16, 32)
REG_MAX = 16  # DFL bins: a side of a box spans at most (REG_MAX - 1) strides from its anchor
NUM_COEFFS = 32
PROTO_STRIDE = 4


class ConvBnAct(nn.Sequential):
    """Convolution, batch norm (folded into the convolution at export) and SiLU."""

    def __init__(self, c_in: int, c_out: int, k: int = 3, s: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03),
            nn.SiLU(inplace=True),
        )


class Bottleneck(nn.Module):
    """Two 3x3 convolutions with a residual connection."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBnAct(c, c), ConvBnAct(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SplitBlock(nn.Module):
    """Cross-stage block: half the channels go through ``n`` bottlenecks, every stage's output is kept."""

    def __init__(self, c_in: int, c_out: int, n: int = 1) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.inp = ConvBnAct(c_in, 2 * self.hidden, 1)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden) for _ in range(n))
        self.out = ConvBnAct((2 + n) * self.hidden, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = list(self.inp(x).split(self.hidden, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.out(torch.cat(parts, dim=1))


class PoolPyramid(nn.Module):
    """Three chained 5x5 max pools concatenated: a wide receptive field at the coarsest level for little cost."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.inp = ConvBnAct(c, c // 2, 1)
        self.out = ConvBnAct(c * 2, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inp(x)
        p1 = F.max_pool2d(x, 5, 1, 2)
        p2 = F.max_pool2d(p1, 5, 1, 2)
        p3 = F.max_pool2d(p2, 5, 1, 2)
        return self.out(torch.cat((x, p1, p2, p3), dim=1))


@dataclass(frozen=True)
class NetConfig:
    """Widths of the network. The defaults make a ~1.1 M-parameter model that trains on a CPU."""

    num_classes: int
    widths: tuple[int, int, int, int, int] = (16, 32, 64, 96, 128)
    depths: tuple[int, int, int, int] = (1, 2, 2, 1)
    head_width: int = 48
    proto_width: int = 64


class PartSeg(nn.Module):
    """Backbone, PAN neck, decoupled per-level heads (DFL boxes, classes, mask coefficients) and prototypes."""

    def __init__(self, config: NetConfig) -> None:
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
        level_widths = (w[2], w[3], w[4])
        nc, hw = config.num_classes, config.head_width

        def branch(c_in: int, c_mid: int, c_out: int) -> nn.Sequential:
            return nn.Sequential(ConvBnAct(c_in, c_mid), ConvBnAct(c_mid, c_mid), nn.Conv2d(c_mid, c_out, 1))

        self.box_heads = nn.ModuleList(branch(c, hw, 4 * REG_MAX) for c in level_widths)
        self.cls_heads = nn.ModuleList(branch(c, hw, nc) for c in level_widths)
        self.coef_heads = nn.ModuleList(branch(c, NUM_COEFFS, NUM_COEFFS) for c in level_widths)
        pw = config.proto_width
        self.proto = nn.Sequential(
            ConvBnAct(w[2], pw),
            nn.Upsample(scale_factor=2.0, mode="nearest"),
            ConvBnAct(pw, pw),
            ConvBnAct(pw, NUM_COEFFS, 1),
        )
        self._init_biases()

    def _init_biases(self) -> None:
        # Start every class at ~1% probability and every DFL bin equal, as detectors with focal-style
        # targets do: otherwise the first steps are spent unlearning 50% scores on 2000+ anchors.
        for head in self.cls_heads:
            nn.init.constant_(head[-1].bias, -4.6)
        for head in self.box_heads:
            nn.init.constant_(head[-1].bias, 1.0)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per level ``(B, 4 * REG_MAX + nc + 32, H_l, W_l)`` raw outputs, and ``(B, 32, H/4, W/4)`` prototypes."""
        c2 = self.stem(x)
        c3 = self.down3(c2)
        c4 = self.down4(c3)
        c5 = self.down5(c4)
        t4 = self.top_down4(torch.cat((F.interpolate(c5, scale_factor=2.0, mode="nearest"), c4), 1))
        p3 = self.top_down3(torch.cat((F.interpolate(t4, scale_factor=2.0, mode="nearest"), c3), 1))
        p4 = self.bottom_up4(torch.cat((self.reduce3(p3), t4), 1))
        p5 = self.bottom_up5(torch.cat((self.reduce4(p4), c5), 1))
        levels = [
            torch.cat((box(p), cls(p), coef(p)), 1)
            for p, box, cls, coef in zip((p3, p4, p5), self.box_heads, self.cls_heads, self.coef_heads)
        ]
        return levels, self.proto(p3)


def anchor_grid(sizes: list[tuple[int, int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor centres ``(N, 2)`` in input pixels and their strides ``(N, 1)``, level by level, row-major."""
    points, strides = [], []
    for (h, w), s in zip(sizes, STRIDES):
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        points.append((torch.stack((xs, ys), -1).reshape(-1, 2).float() + 0.5) * s)
        strides.append(torch.full((h * w, 1), float(s), device=device))
    return torch.cat(points), torch.cat(strides)


def flatten_levels(levels: list[torch.Tensor], num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Box-bin logits ``(B, N, 4 * REG_MAX)``, class logits ``(B, N, nc)`` and coefficients ``(B, N, 32)``."""
    flat = torch.cat([lv.flatten(2) for lv in levels], 2).transpose(1, 2)
    return flat.split((4 * REG_MAX, num_classes, NUM_COEFFS), dim=2)


def bin_expectation(box_logits: torch.Tensor) -> torch.Tensor:
    """Left, top, right, bottom distances in strides: the expectation of each side's bin distribution."""
    shape = box_logits.shape[:-1]
    probs = box_logits.reshape(*shape, 4, REG_MAX).softmax(-1)
    return probs @ torch.arange(REG_MAX, dtype=probs.dtype, device=probs.device)


class ExportWrapper(nn.Module):
    """The inference graph: decoded boxes, class probabilities and coefficients in the YOLOv8-seg layout."""

    def __init__(self, net: PartSeg) -> None:
        super().__init__()
        self.net = net
        # DFL's expectation as a fixed 1x1 convolution: the quantizer recognises it as part of the float tail.
        self.dfl = nn.Conv2d(REG_MAX, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(REG_MAX, dtype=torch.float32).view(1, REG_MAX, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        levels, protos = self.net(x)
        nc = self.net.config.num_classes
        sizes = [(lv.shape[2], lv.shape[3]) for lv in levels]
        points, strides = anchor_grid(sizes, x.device)
        flat = torch.cat([lv.flatten(2) for lv in levels], 2)  # (B, C, N)
        box, cls, coef = flat.split((4 * REG_MAX, nc, NUM_COEFFS), dim=1)
        b, _, n = box.shape
        bins = box.view(b, 4, REG_MAX, n).transpose(1, 2).softmax(1)
        ltrb = self.dfl(bins).view(b, 4, n)
        lt, rb = ltrb.split(2, dim=1)
        centre = points.t().unsqueeze(0)
        s = strides.t().unsqueeze(0)
        xy = centre + (rb - lt) / 2 * s
        wh = (lt + rb) * s
        return torch.cat((xy, wh, cls.sigmoid(), coef), 1), protos
