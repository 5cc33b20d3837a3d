"""Training targets and losses: task-aligned assignment, BCE classes, CIoU + DFL boxes, cropped BCE masks.

Ground truth arrives padded per image: ``gt_boxes (B, M, 4)`` xyxy in input pixels, ``gt_classes (B, M)``,
``gt_valid (B, M)`` and ``gt_masks (B, M, Hp, Wp)``: each instance's share of every prototype pixel
(0..1, area-averaged from the full-resolution mask, so boundaries carry sub-pixel information).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812

from .net import NUM_COEFFS, PROTO_STRIDE, REG_MAX, anchor_grid, bin_expectation, flatten_levels

EPS = 1e-9


@dataclass(frozen=True)
class LossWeights:
    """Gains of the four terms (the YOLOv8 defaults for boxes, classes and DFL; masks share the box gain)."""

    box: float = 7.5
    cls: float = 0.5
    dfl: float = 1.5
    mask: float = 7.5


def box_iou_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes ``a[..., 4]`` and ``b[..., 4]`` (xyxy), broadcast elementwise."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter + EPS)


def complete_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CIoU: IoU minus the normalised centre distance and an aspect-ratio consistency term."""
    iou = box_iou_pairs(a, b)
    enclose = torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])
    diag2 = enclose.pow(2).sum(-1) + EPS
    centre2 = ((a[..., :2] + a[..., 2:]) - (b[..., :2] + b[..., 2:])).pow(2).sum(-1) / 4
    wa, ha = (a[..., 2] - a[..., 0]).clamp(min=EPS), (a[..., 3] - a[..., 1]).clamp(min=EPS)
    wb, hb = (b[..., 2] - b[..., 0]).clamp(min=EPS), (b[..., 3] - b[..., 1]).clamp(min=EPS)
    v = (4 / math.pi**2) * (torch.atan(wb / hb) - torch.atan(wa / ha)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + EPS))
    return iou - (centre2 / diag2 + v * alpha)


@dataclass
class Assignment:
    """Per anchor: foreground flag, index of the assigned instance and soft class targets."""

    foreground: torch.Tensor  # (B, N) bool
    gt_index: torch.Tensor  # (B, N) long
    target_scores: torch.Tensor  # (B, N, nc)


@torch.no_grad()
def assign(
    scores: torch.Tensor,
    pred_boxes: torch.Tensor,
    points: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    gt_valid: torch.Tensor,
    topk: int = 10,
    alpha: float = 0.5,
    beta: float = 6.0,
) -> Assignment:
    """Task-aligned assignment: each instance takes the ``topk`` anchors inside it with the best
    ``score**alpha * iou**beta``; an anchor claimed twice goes to the instance it overlaps most.

    Targets are that alignment rescaled so each instance's best anchor gets its best IoU, which
    trains scores to predict localisation quality, not just class.
    """
    b, n, nc = scores.shape
    m = gt_boxes.shape[1]
    if m == 0:
        return Assignment(
            torch.zeros(b, n, dtype=torch.bool, device=scores.device),
            torch.zeros(b, n, dtype=torch.long, device=scores.device),
            torch.zeros_like(scores),
        )
    inside = (points.view(1, 1, n, 2) > gt_boxes[:, :, None, :2] + EPS).all(-1) & (
        points.view(1, 1, n, 2) < gt_boxes[:, :, None, 2:] - EPS
    ).all(-1)
    candidates = inside & gt_valid[:, :, None]  # (B, M, N)
    ious = box_iou_pairs(gt_boxes[:, :, None, :], pred_boxes[:, None, :, :]).clamp(min=0) * candidates
    cls_index = gt_classes.clamp(min=0).long()[:, :, None].expand(b, m, n)
    cls_scores = scores.transpose(1, 2).gather(1, cls_index) * candidates  # (B, M, N)
    align = cls_scores.pow(alpha) * ious.pow(beta)
    top = align.topk(min(topk, n), dim=-1).indices
    chosen = torch.zeros_like(candidates).scatter_(-1, top, True) & candidates
    # An anchor claimed by several instances keeps only the one it overlaps most.
    claimed = chosen.sum(1) > 1  # (B, N)
    if claimed.any():
        best = ious.argmax(1)  # (B, N)
        only_best = F.one_hot(best, m).transpose(1, 2).bool()
        chosen = torch.where(claimed[:, None, :], only_best & candidates, chosen)
    foreground = chosen.any(1)
    gt_index = chosen.float().argmax(1)
    align = align * chosen
    ious = ious * chosen
    norm = (align * ious.amax(-1, keepdim=True) / (align.amax(-1, keepdim=True) + EPS)).amax(1)  # (B, N)
    labels = gt_classes.long().gather(1, gt_index).clamp(min=0)
    target_scores = F.one_hot(labels, nc).float() * (norm * foreground)[..., None]
    return Assignment(foreground, gt_index, target_scores)


def segmentation_loss(
    levels: list[torch.Tensor],
    protos: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    gt_valid: torch.Tensor,
    gt_masks: torch.Tensor,
    weights: LossWeights | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss (scaled by batch size, as the gains assume) and its parts for logging."""
    weights = weights or LossWeights()
    nc = levels[0].shape[1] - 4 * REG_MAX - NUM_COEFFS
    box_logits, cls_logits, coeffs = flatten_levels(levels, nc)
    batch = cls_logits.shape[0]
    points, strides = anchor_grid([(lv.shape[2], lv.shape[3]) for lv in levels], cls_logits.device)
    ltrb = bin_expectation(box_logits)  # (B, N, 4) in strides
    pred_boxes = torch.cat((points - ltrb[..., :2] * strides, points + ltrb[..., 2:] * strides), -1)

    a = assign(cls_logits.detach().sigmoid(), pred_boxes.detach(), points, gt_boxes, gt_classes, gt_valid)
    score_sum = a.target_scores.sum().clamp(min=1.0)
    loss_cls = F.binary_cross_entropy_with_logits(cls_logits, a.target_scores, reduction="sum") / score_sum

    fg = a.foreground
    zero = cls_logits.sum() * 0
    loss_box = loss_dfl = loss_mask = zero
    if fg.any():
        weight = a.target_scores.sum(-1)[fg]
        target = gt_boxes.gather(1, a.gt_index[..., None].expand(-1, -1, 4))  # (B, N, 4)
        loss_box = ((1 - complete_iou(pred_boxes[fg], target[fg])) * weight).sum() / score_sum

        anchor_pts, anchor_strides = points.expand(batch, -1, -1)[fg], strides.expand(batch, -1, -1)[fg]
        target_fg = target[fg]
        dist = torch.cat((anchor_pts - target_fg[:, :2], target_fg[:, 2:] - anchor_pts), -1) / anchor_strides
        loss_dfl = (distribution_focal(box_logits[fg].view(-1, 4, REG_MAX), dist) * weight[:, None]).sum() / score_sum

        loss_mask = _mask_loss(protos, coeffs, fg, a.gt_index, target, gt_masks, weight)

    total = (
        weights.box * loss_box + weights.cls * loss_cls + weights.dfl * loss_dfl + weights.mask * loss_mask
    ) * batch
    parts = {
        k: float(v.detach()) for k, v in (("box", loss_box), ("cls", loss_cls), ("dfl", loss_dfl), ("mask", loss_mask))
    }
    return total, parts


def distribution_focal(bin_logits: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Cross-entropy towards the two bins around each true distance, weighted by closeness (``(P, 4)``)."""
    dist = dist.clamp(0, REG_MAX - 1 - 0.01)
    left = dist.long()
    w_right = dist - left
    logp = bin_logits.log_softmax(-1)
    lp_left = logp.gather(-1, left[..., None]).squeeze(-1)
    lp_right = logp.gather(-1, (left + 1)[..., None]).squeeze(-1)
    return -(lp_left * (1 - w_right) + lp_right * w_right).mean(-1, keepdim=True)


def _mask_loss(
    protos: torch.Tensor,
    coeffs: torch.Tensor,
    fg: torch.Tensor,
    gt_index: torch.Tensor,
    target_boxes: torch.Tensor,
    gt_masks: torch.Tensor,
    weight: torch.Tensor,
) -> torch.Tensor:
    """Per-pixel BCE of each positive anchor's mask against its instance, inside the instance's box only
    (the SDK crops masks to boxes too), averaged per box so small parts count as much as large ones."""
    _, _, hp, wp = protos.shape
    batch_idx = fg.nonzero(as_tuple=True)[0]
    inst = gt_index[fg]
    # One matmul per image: gathering a prototype stack per positive anchor would take gigabytes.
    logits = torch.cat([coeffs[b][fg[b]] @ protos[b].flatten(1) for b in range(fg.shape[0])]).view(-1, hp, wp)
    targets = gt_masks[batch_idx, inst].float()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    boxes = target_boxes[fg] / PROTO_STRIDE
    xs = torch.arange(wp, device=protos.device, dtype=boxes.dtype) + 0.5
    ys = torch.arange(hp, device=protos.device, dtype=boxes.dtype) + 0.5
    in_x = (xs[None, :] >= boxes[:, 0:1]) & (xs[None, :] < boxes[:, 2:3])
    in_y = (ys[None, :] >= boxes[:, 1:2]) & (ys[None, :] < boxes[:, 3:4])
    crop = (in_y[:, :, None] & in_x[:, None, :]).float()
    per_box = (bce * crop).sum((1, 2)) / crop.sum((1, 2)).clamp(min=1.0)
    return (per_box * weight).sum() / weight.sum().clamp(min=1.0)
