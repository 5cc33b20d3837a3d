// edgeseg core: NMS variants beside the greedy box NMS of core.hpp.
//
// - Fast NMS (YOLACT, dbolya/yolact layers/functions/detection.py `fast_nms` / `cc_fast_nms`):
//   per class the top_k candidates by score; candidate j is kept when its largest IoU with any
//   higher-scored candidate of its class (kept or not: no sequential dependence) is <= iou.
// - Matrix NMS (SOLOv2, open-mmlab/mmdetection mmdet/models/layers/matrix_nms.py
//   `mask_matrix_nms`): nothing is removed by overlap; each score is multiplied by a decay
//   min_i f(iou_ij) / f(compensate_i) over the higher-scored candidates i of its class, with
//   compensate_i the largest IoU of i with a candidate above it and f the Gaussian
//   exp(-sigma iou^2) or linear (1 - iou) kernel; then decayed scores below filter_thr go.
//   Over box IoU (YOLO-style candidates) or over the IoU of bit-packed masks.
// - Mask NMS: greedy NMS (as core.hpp's nms) by the IoU of bit-packed masks instead of boxes.
//
// Conventions shared by all: candidates are ordered by descending score, ties by lower index
// first (a stable sort; PyTorch's sort leaves tie order unspecified). IoU is computed in float32
// as the references do (box: inter / (area_a + area_b - inter); mask: popcounts), except that a
// pair with no positive intersection or a union <= 0 (degenerate boxes, empty masks) has IoU 0
// where the references divide 0 by 0 into NaN. Every entry point validates its arguments and
// throws InvalidArgument (a Python ValueError).
#pragma once

#include <cstdint>
#include <vector>

#include "edgeseg/core.hpp"
#include "edgeseg/track.hpp"  // MaskCrops

namespace edgeseg {

// Kept candidates by descending (decayed) score.
struct NmsResult {
  std::vector<int64_t> keep;     // index of each kept candidate in the input
  std::vector<float> scores;     // its score (Matrix NMS: the decayed score)
  std::vector<int32_t> classes;  // its class
  int64_t size() const { return static_cast<int64_t>(keep.size()); }
};

// Candidates given to Fast NMS: n boxes (x1 y1 x2 y2, finite) with either one score and class
// each (num_classes == 0; classes null means class 0 for all) or an n x num_classes row-major
// score matrix (num_classes > 0, classes null), where each class column is its own candidate
// set, as YOLACT's per-class scores are (one box may then be kept for several classes).
struct ScoredBoxes {
  const float* boxes = nullptr;
  const float* scores = nullptr;
  const int32_t* classes = nullptr;
  int64_t n = 0;
  int64_t num_classes = 0;
};

struct FastNmsOptions {
  float iou = 0.5f;       // keep when the largest IoU with a higher-scored candidate is <= this
  int64_t top_k = 200;    // candidates per class entering the IoU matrix (-1: all)
  int64_t max_det = 100;  // kept candidates returned, best first (-1: all)
  bool agnostic = false;  // YOLACT's cross-class mode (cc_fast_nms): one set for all classes;
                          // a score matrix collapses to each row's best class (lowest on ties)
  float conf = -1.f;      // YOLACT's second_threshold: keep only scores > conf (< 0: off)
};

NmsResult fast_nms(const ScoredBoxes& candidates, const FastNmsOptions& opt);

enum class MatrixKernel : uint8_t { kGaussian, kLinear };

struct MatrixNmsOptions {
  MatrixKernel kernel = MatrixKernel::kGaussian;
  float sigma = 2.f;        // Gaussian kernel: exp(-sigma * iou^2); > 0
  int64_t pre_topk = -1;    // candidates entering the matrix, best first (mmdet nms_pre; -1: all)
  int64_t max_det = -1;     // kept candidates returned (mmdet max_num; -1: all)
  float filter_thr = -1.f;  // when > 0, drop decayed scores < filter_thr (mmdet filter_thr)
  bool agnostic = false;    // decay across classes too (mmdet always decays within a class)
};

// Matrix NMS by box IoU: n boxes (x1 y1 x2 y2, finite), scores (n, finite), classes (n; null: all
// class 0).
NmsResult matrix_nms(const float* boxes, const float* scores, const int32_t* classes, int64_t n,
                     const MatrixNmsOptions& opt);

// Matrix NMS by mask IoU: n bit-packed crops (as MaskCrops / Masks), scores and classes as above.
NmsResult mask_matrix_nms(const MaskCrops& masks, const float* scores, const int32_t* classes,
                          int64_t n, const MatrixNmsOptions& opt);

// Greedy NMS by mask IoU: a candidate is suppressed when the IoU of its mask with a kept mask of
// its class (any class when agnostic) is strictly above `iou`, as box NMS does; at most max_det
// kept (-1: all). An empty mask overlaps nothing, so it is never suppressed.
NmsResult mask_nms(const MaskCrops& masks, const float* scores, const int32_t* classes, int64_t n,
                   float iou, int64_t max_det, bool agnostic);

// IoU of every pair of n bit-packed crops: n x n row-major float32, symmetric, 1 on the diagonal
// (0 for an empty mask). IoU = inter / (area_i + area_j - inter) in float32, as matrix NMS uses.
std::vector<float> pairwise_mask_iou(const MaskCrops& masks, int64_t n);

}  // namespace edgeseg
