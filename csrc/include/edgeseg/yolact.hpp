// YOLACT / YOLACT++ / yolact_edge decoding: SSD box decoding against priors, per-class Fast NMS
// and prototype masks cropped at prototype resolution, as dbolya/yolact's
// layers/functions/detection.py (Detect) and layers/output_utils.py (postprocess) do it.
#pragma once

#include <cstdint>
#include <vector>

#include "edgeseg/core.hpp"

namespace edgeseg {

struct YolactOptions {
  // yolact's evaluation defaults (data/config.py: nms_conf_thresh 0.05, nms_thresh 0.5,
  // nms_top_k 200, max_num_detections 100).
  float conf = 0.05f;     // a (prior, class) pair is a candidate when its score is strictly above
  float iou = 0.5f;       // Fast NMS keeps a box whose IoU with every higher one is <= this
  int64_t top_k = 200;    // candidates per class entering NMS, highest scores first
  int64_t max_det = 100;  // detections kept over all classes, highest scores first
  bool cross_class = false;  // one NMS over all classes (Detect.cc_fast_nms) instead of per class
  bool fast = true;          // Fast NMS; false: greedy NMS per class (core nms_ordered)
  std::vector<uint8_t> class_allowed;  // empty: every class; else one flag per foreground class
};

// Detections of one image. `boxes` (N x 4 rows, x1 y1 x2 y2 as fractions of the input) are
// decoded boxes, or, when `priors` is given (N x 4 rows, cx cy w h fractions), raw SSD offsets
// decoded as yolact's box_utils.decode (variances 0.1 and 0.2). `conf` has N rows of
// background + classes probabilities (column 0 is background); `coeffs` N rows of mask
// coefficients. Results hold boxes as fractions of the input (as decoded), foreground class ids
// (0-based) and scores, sorted by descending score, at most max_det.
Detections decode_yolact(const View2D& boxes, const View2D* priors, const View2D& conf,
                         const View2D& coeffs, const YolactOptions& opt);

// Masks of N detections as yolact's postprocess makes them: sigmoid(prototypes . coefficients)
// at prototype resolution, zeroed outside the box widened by one prototype pixel (box_utils.crop,
// padding 1), resized bilinearly (half-pixel centres) to the source image, above 0.5. The
// prototypes span the whole input, which spans the whole image (plain resize). `boxes` are
// fractions of the input (as decode_yolact returns them). Each crop covers the pixels the
// cropped prototype window can reach (the box plus at most a prototype pixel and one output
// pixel), so it holds the whole mask; only that window is ever computed.
Masks yolact_masks(const ProtoView& protos, const float* coeffs, const float* boxes, int64_t n,
                   int64_t src_h, int64_t src_w, const MaskOptions& opt);

}  // namespace edgeseg
