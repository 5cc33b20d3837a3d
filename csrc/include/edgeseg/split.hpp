// YOLOv8/YOLO11-seg heads split for NPUs (Rockchip RKNN, Hailo, Qualcomm AI Hub, EdgeFirst): the
// host decodes several tensors, each with its own quantization, instead of one concatenated head.
#pragma once

#include <cstdint>
#include <vector>

#include "edgeseg/core.hpp"

namespace edgeseg {

// One stride of a split head. Every tensor is a 2-D view of channels x cells, cells in row-major
// grid order (y * grid_w + x); NCHW data has stride_col 1, NHWC data stride_row 1. Each view has
// its own dtype and quantization.
struct SplitLevel {
  View2D boxes;      // 4 * bins rows: DFL logits, sides l, t, r, b (bins == 1: distances in cells)
  View2D scores;     // num_classes rows of class probabilities (sigmoid in the graph)
  View2D coeffs;     // mask coefficients
  View2D score_sum;  // optional (rows 0): one row, the class probabilities' sum clipped to 1 (RKNN)
  int64_t grid_h = 0, grid_w = 0;
  float stride = 0.f;  // input pixels per cell
};

// Detections in input pixels from every level of a split head, as decode_yolo makes them from
// the fused head (same threshold, candidate order, NMS): the class threshold is one compare per
// cell in each tensor's own domain (the score sum first, where there is one); the distance
// expectation and box decode run only for candidates, coefficients are read only for survivors.
// Anchors are the cell centres ((x + 0.5, y + 0.5) * stride), numbered level by level.
Detections decode_yolo_split(const std::vector<SplitLevel>& levels, int64_t num_classes,
                             const DecodeOptions& opt);

// One stride of an anchor-based split head (YOLOv5-seg as Rockchip's rknn_model_zoo exports it).
// Views are channels x cells as in SplitLevel. `preds` has anchors.size() * (5 + num_classes)
// rows: anchor a's x, y, w, h, objectness and class probabilities (all sigmoid in the graph) in
// rows a * (5 + num_classes) ...; `coeffs` has anchors.size() * num_coeffs rows, anchor a's in
// rows a * num_coeffs .... Each view has its own dtype and quantization.
struct AnchorLevel {
  View2D preds;
  View2D coeffs;
  int64_t grid_h = 0, grid_w = 0;
  float stride = 0.f;          // input pixels per cell
  std::vector<float> anchors;  // (w, h) pairs in input pixels, one per anchor of a cell
};

// Detections in input pixels from every level of an anchor-based split head, as decode_yolo with
// objectness makes them from the fused YOLOv5 head: anchors whose objectness is above conf (one
// compare in the data's own type), their best class, score = objectness x class in float, kept
// when above conf. Boxes are decoded only for candidates: xy = (2 v - 0.5 + grid) x stride,
// wh = (2 v)^2 x anchor. Anchor ids are numbered level by level and, within a level, anchor-major
// (a * cells + cell) as YOLOv5's Detect flattens its output, so they equal the fused head's rows.
Detections decode_yolov5_split(const std::vector<AnchorLevel>& levels, int64_t num_classes,
                               const DecodeOptions& opt);

// Heads whose graph already decoded boxes and picked each anchor's best class (Qualcomm AI Hub):
// `boxes` N x 4 (x1 y1 x2 y2, scaled by opt.box_scale), `scores` N x 1 best-class scores,
// `classes` N class ids, `coeffs` N x num_coeffs. Then threshold and NMS as decode_yolo.
Detections decode_yolo_scored(const View2D& boxes, const View2D& scores, const int32_t* classes,
                              const View2D& coeffs, int64_t num_classes, const DecodeOptions& opt);

}  // namespace edgeseg
