// Instance masks that arrive per detection from end-to-end exports (the `dets, labels, masks`
// family): Mask R-CNN's small box-relative probability maps pasted into their boxes, and
// full-frame masks (RTMDet-Ins, CondInst, SOLOv2, torchvision's pasted masks) cropped to theirs.
// Either way the result is the core's box-cropped, bit-packed Masks at source resolution: no
// full-frame mask is ever made.
#pragma once

#include <cstdint>

#include "edgeseg/core.hpp"

namespace edgeseg {

// How a box-relative (RoI) mask is pasted into its box; the two references differ in where the
// mask's cells sit relative to the box and in the threshold's comparison.
enum class PasteConvention : uint8_t {
  // MMDetection's _do_paste_mask (skip_empty, as on CPU) and the MMDeploy SDK's
  // ResizeInstanceMask: pixel centre x + 0.5 sampled at mask position
  // (x + 0.5 - x1) / (x2 - x1) * M - 0.5 (grid_sample, align_corners=False), bilinear with zeros
  // outside the mask, only over the box grown to whole pixels plus one on each side
  // [floor(x1) - 1, ceil(x2) + 1); a pixel is set when its probability is >= the threshold.
  kMMDet,
  // torchvision's paste_masks_in_image: the mask padded by one zero cell on each side, the box
  // scaled about its centre by (M + 2) / M and truncated to integers, the padded mask resized
  // (bilinear, align_corners=False) to (x2 - x1 + 1) x (y2 - y1 + 1) pixels and placed at
  // (x1, y1); a pixel is set when its probability is > the threshold (torchvision's `mask > 0.5`).
  kTorchvision,
};

// A read-only stack of per-detection float32 masks: (detection, y, x) with element strides.
struct MaskStackView {
  const void* data = nullptr;
  DType dtype = DType::kFloat32;  // kFloat32 probabilities, or kUInt8 binary masks (0 / not 0)
  int64_t count = 0, height = 0, width = 0;
  int64_t stride_n = 0, stride_y = 0, stride_x = 0;
};

struct PasteOptions {
  PasteConvention convention = PasteConvention::kMMDet;
  float threshold = 0.5f;  // probability threshold (RoI masks and float full-frame masks)
  bool inclusive = true;   // full-frame masks: set at >= threshold (MMDeploy) rather than >
  bool soft = false;       // also return the probabilities inside each crop
};

// Pastes masks[rows[i]] (an M x M' RoI mask) into boxes[i] (x1 y1 x2 y2 in source pixels) of a
// src_h x src_w image, for i < n. Every detection keeps its place in the result (keep = 0..n-1),
// with an empty crop where its box covers no pixel (a zero-width box pastes nothing).
Masks paste_roi_masks(const MaskStackView& masks, const int64_t* rows, const float* boxes,
                      int64_t n, int64_t src_h, int64_t src_w, const PasteOptions& opt);

// Crops full-frame masks masks[rows[i]] (model-input resolution, placed in the input as `lb`
// says) to the source pixels of boxes[i] (source pixels), grown to whole pixels plus one on each
// side as for RoI masks; a source pixel reads its input pixel by nearest-neighbour
// (PyTorch's F.interpolate(mode="nearest") from the content window, as MMDeploy rescales). A box
// with x2 <= x1 or y2 <= y1 (the exporter wrote none: SOLOv2) is replaced by the extent of its
// mask, so such instances are cropped to their pixels. Every detection keeps its place.
Masks crop_frame_masks(const MaskStackView& masks, const int64_t* rows, const float* boxes,
                       int64_t n, const Letterbox& lb, const PasteOptions& opt);

}  // namespace edgeseg
