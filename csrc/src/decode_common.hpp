// What the YOLO decoders share (decode.cpp: the fused heads; decode_split.cpp: the NPU split
// heads): argument checks, the candidate record, score thresholds in each dtype's own domain, the
// candidate scans and the tail from candidates to detections. Internal: not installed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "checks.hpp"
#include "edgeseg/core.hpp"

namespace edgeseg {
namespace decode_detail {

inline void check_view(const View2D& v, const char* what) {
  // Signs first: rows * cols of arbitrary sizes could overflow.
  if (v.rows < 0 || v.cols < 0) throw InvalidArgument(std::string(what) + " has a negative size");
  if (v.data == nullptr && v.rows > 0 && v.cols > 0)
    throw InvalidArgument(std::string(what) + " is null");
  detail::check_extent(what, {v.rows, v.cols}, {v.stride_row, v.stride_col});
  detail::check_quant(v.dtype, v.quant, what);
}

// Class ids are int32 (in Detections and in the scans), so num_classes must fit.
inline void check_num_classes(int64_t num_classes) {
  if (num_classes < 1 || num_classes > std::numeric_limits<int32_t>::max())
    throw InvalidArgument("num_classes must be in [1, 2147483647], got " +
                          std::to_string(num_classes));
}

inline void check_options(const DecodeOptions& opt, int64_t num_classes) {
  if (!(opt.conf >= 0.f && opt.conf <= 1.f)) throw InvalidArgument("conf must be in [0, 1]");
  if (!(opt.iou >= 0.f && opt.iou <= 1.f)) throw InvalidArgument("iou must be in [0, 1]");
  if (opt.max_det < 0) throw InvalidArgument("max_det must be >= 0");
  if (opt.pre_nms_topk < 1) throw InvalidArgument("pre_nms_topk must be >= 1");
  if (!(opt.box_scale_x > 0.f && opt.box_scale_y > 0.f && std::isfinite(opt.box_scale_x) &&
        std::isfinite(opt.box_scale_y)))
    throw InvalidArgument("box scales must be positive and finite");
  if (!opt.class_allowed.empty() && static_cast<int64_t>(opt.class_allowed.size()) != num_classes)
    throw InvalidArgument("class filter must have one flag per class (" +
                          std::to_string(num_classes) + ")");
}

inline bool allowed(const DecodeOptions& opt, int32_t cls) {
  return opt.class_allowed.empty() || opt.class_allowed[static_cast<size_t>(cls)] != 0;
}

// Threshold in the data's own domain: a score passes when it is strictly above `Threshold<T>`.
template <typename T>
using Threshold = std::conditional_t<std::is_floating_point_v<T>, float, int32_t>;

struct Candidate {
  float score;
  int32_t anchor;
  int32_t cls;
};

// The smallest quantized value whose real value is above `conf`, so the threshold is applied to
// raw quantized scores with one integer comparison. Real values are computed exactly as `real`
// does for any read, so quantized and float decoding keep the same candidates.
template <typename T>
int32_t quantized_threshold(float conf, const Quant& q) {
  const int32_t lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
  for (int32_t v = lo; v <= hi; ++v) {
    if (real(static_cast<T>(v), q) > conf) return v;
  }
  return hi + 1;  // nothing can pass
}

// The threshold a raw score of type T must be strictly above to pass `conf`.
template <typename T>
Threshold<T> raw_threshold(float conf, const Quant& q) {
  if constexpr (std::is_floating_point_v<T>) {
    return conf;
  } else {
    return quantized_threshold<T>(conf, q) - 1;
  }
}

[[noreturn]] inline void throw_nonfinite_scores() {
  throw InvalidArgument(
      "model output has NaN or infinite class scores; the model or its quantization is broken "
      "(run `edgeseg info MODEL` to inspect it)");
}

// Scores are probabilities (the graph ends in a sigmoid): a score above 1 means logits or a wrong
// output, which would otherwise pass every threshold silently. Quantized scores may round up by up
// to one step.
inline void check_score(float score, const Quant& quant, bool quantized) {
  const float limit = 1.0f + (quantized ? std::max(quant.scale, 1e-3f) : 1e-3f);
  if (score > limit)
    throw InvalidArgument(
        "model output has class scores above 1 (up to " + std::to_string(score) +
        "); edgeseg expects probabilities: is the sigmoid missing from the graph, "
        "or is this output not the detections?");
}

// Candidates of an anchor-based head with objectness (YOLOv5 / YOLOv7-seg): row `obj_row` of
inline void check_finite(const float* v, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i]))
      throw InvalidArgument(std::string("model output has NaN or infinite ") + what +
                            "; the model or its quantization is broken (run `edgeseg info "
                            "MODEL` to inspect it)");
  }
}

// Candidates (in anchor order) -> Detections: ordered by descending score, the pre-NMS top k,
// boxes made for those only (`box(anchor, out4)`), NMS, coefficients read for the kept ones only
// (`coeff(anchor, c)`). `score_step` is the largest quantization step of the scores (0: float).
template <typename BoxFn, typename CoeffFn>
Detections select(std::vector<Candidate>& cand, int64_t nm, const DecodeOptions& opt,
                  float score_step, BoxFn&& box, CoeffFn&& coeff) {
  Detections out;
  out.num_coeffs = nm;
  // Candidates are in anchor order here; they are ordered by descending score with std::sort and a
  // comparator on the score alone, which is exactly how the reference (PyTorch's CPU argsort)
  // orders them, ties included. Ties are rare in float outputs and common in quantized ones,
  // where the order decides which of two equal-score overlapping boxes NMS keeps.
  auto by_score = [](const Candidate& x, const Candidate& y) { return x.score > y.score; };
  std::sort(cand.begin(), cand.end(), by_score);
  if (!cand.empty()) check_score(cand[0].score, Quant{score_step, 0}, score_step > 0.f);
  if (static_cast<int64_t>(cand.size()) > opt.pre_nms_topk) {
    cand.resize(static_cast<size_t>(opt.pre_nms_topk));
    std::sort(cand.begin(), cand.end(), by_score);  // the reference sorts the kept ones again
  }

  const int64_t m = static_cast<int64_t>(cand.size());
  std::vector<float> boxes(static_cast<size_t>(4 * m));
  std::vector<int32_t> cand_cls(static_cast<size_t>(m));
  std::vector<int64_t> order(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    box(cand[i].anchor, boxes.data() + 4 * i);
    cand_cls[i] = cand[i].cls;
    order[i] = i;
  }
  check_finite(boxes.data(), 4 * m, "box coordinates");
  const std::vector<int64_t> keep = nms_ordered(boxes.data(), cand_cls.data(), order.data(), m,
                                                opt.iou, opt.max_det, opt.agnostic);

  const size_t k = keep.size();
  int64_t coeff_count;  // k <= anchors, but k * nm of a broadcast view may not fit
  if (detail::mul_overflows(static_cast<int64_t>(k), nm, &coeff_count))
    throw InvalidArgument("too many mask coefficients (" + std::to_string(nm) + " per detection)");
  out.boxes.resize(4 * k);
  out.scores.resize(k);
  out.classes.resize(k);
  out.coeffs.resize(static_cast<size_t>(coeff_count));
  for (size_t j = 0; j < k; ++j) {
    const int64_t i = keep[j], a = cand[i].anchor;
    std::copy_n(boxes.data() + 4 * i, 4, out.boxes.data() + 4 * j);
    out.scores[j] = cand[i].score;
    out.classes[j] = cand_cls[i];
    for (int64_t c = 0; c < nm; ++c) out.coeffs[j * nm + c] = coeff(a, c);
  }
  check_finite(out.coeffs.data(), static_cast<int64_t>(out.coeffs.size()), "mask coefficients");
  return out;
}

inline float quant_step(const View2D& v) {
  return v.dtype == DType::kFloat32 ? 0.f : v.quant.scale;
}

// Candidates among the anchors (columns) of `pred`, whose class scores are rows first_row ..
// first_row + num_classes, in the data's own dtype; anchor ids are offset by `anchor0`.
void candidates_of(const View2D& pred, int64_t first_row, int64_t num_classes,
                   const DecodeOptions& opt, int32_t anchor0, std::vector<Candidate>& cand);

// Objectness in row `obj_row` of `pred`, class probabilities in the num_classes rows after it
// (YOLOv5): score = objectness x class; anchor ids are offset by `anchor0`.
void objectness_candidates_of(const View2D& pred, int64_t obj_row, int64_t num_classes,
                              const DecodeOptions& opt, int32_t anchor0,
                              std::vector<Candidate>& cand);

}  // namespace decode_detail
}  // namespace edgeseg
