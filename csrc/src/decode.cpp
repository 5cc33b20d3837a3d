#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>

#include "checks.hpp"
#include "clones.hpp"
#include "edgeseg/core.hpp"

namespace edgeseg {
namespace {

void check_view(const View2D& v, const char* what) {
  // Signs first: rows * cols of arbitrary sizes could overflow.
  if (v.rows < 0 || v.cols < 0) throw InvalidArgument(std::string(what) + " has a negative size");
  if (v.data == nullptr && v.rows > 0 && v.cols > 0)
    throw InvalidArgument(std::string(what) + " is null");
  detail::check_extent(what, {v.rows, v.cols}, {v.stride_row, v.stride_col});
  detail::check_quant(v.dtype, v.quant, what);
}

// Class ids are int32 (in Detections and in the scans), so num_classes must fit.
void check_num_classes(int64_t num_classes) {
  if (num_classes < 1 || num_classes > std::numeric_limits<int32_t>::max())
    throw InvalidArgument("num_classes must be in [1, 2147483647], got " +
                          std::to_string(num_classes));
}

void check_options(const DecodeOptions& opt, int64_t num_classes) {
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

bool allowed(const DecodeOptions& opt, int32_t cls) {
  return opt.class_allowed.empty() || opt.class_allowed[static_cast<size_t>(cls)] != 0;
}

// Running maximum of one class row: the memory-bound part, kept as lean as numpy's own max. For
// float data, returns whether the row held a NaN or infinity (NaN would otherwise silently hide
// detections: it never compares greater).
template <typename T>
inline __attribute__((always_inline)) int max_row_impl(const T* __restrict row, T* __restrict best,
                                                       int64_t n) {
  int32_t bad = 0;
  for (int64_t a = 0; a < n; ++a) {
    const T v = row[a];
    if constexpr (std::is_floating_point_v<T>) {
      const T zero_if_finite = v - v;  // NaN for NaN and +-inf
      bad |= static_cast<int32_t>(zero_if_finite != zero_if_finite);
    }
    best[a] = v > best[a] ? v : best[a];
  }
  return bad;
}

// Running maximum and its class index, branch-free: for blocks with many candidates.
template <typename T>
inline __attribute__((always_inline)) void argmax_row_impl(const T* __restrict row,
                                                           T* __restrict best,
                                                           int32_t* __restrict cls, int64_t n,
                                                           int32_t c) {
  for (int64_t a = 0; a < n; ++a) {
    const T v = row[a];
    const T old = best[a];
    const int32_t better = -static_cast<int32_t>(v > old);
    best[a] = v > old ? v : old;
    cls[a] = (c & better) | (cls[a] & ~better);
  }
}

// One call per anchor block, looping over the class rows inside: at these sizes (a few hundred
// bytes a row) a call and loop prologue per row would cost more than the loads.
template <typename T>
inline __attribute__((always_inline)) int max_rows_impl(const T* first, int64_t stride,
                                                        int64_t rows, T* best, int64_t n) {
  int bad = 0;
  for (int64_t c = 0; c < rows; ++c) bad |= max_row_impl(first + c * stride, best, n);
  return bad;
}
template <typename T>
inline __attribute__((always_inline)) void argmax_rows_impl(const T* first, int64_t stride,
                                                            int64_t rows, T* best, int32_t* cls,
                                                            int64_t n) {
  for (int64_t c = 0; c < rows; ++c)
    argmax_row_impl(first + c * stride, best, cls, n, static_cast<int32_t>(c));
}

EDGESEG_CLONES int max_rows(const float* f, int64_t s, int64_t r, float* b, int64_t n) {
  return max_rows_impl(f, s, r, b, n);
}
EDGESEG_CLONES int max_rows(const int8_t* f, int64_t s, int64_t r, int8_t* b, int64_t n) {
  return max_rows_impl(f, s, r, b, n);
}
EDGESEG_CLONES int max_rows(const uint8_t* f, int64_t s, int64_t r, uint8_t* b, int64_t n) {
  return max_rows_impl(f, s, r, b, n);
}
EDGESEG_CLONES void argmax_rows(const float* f, int64_t s, int64_t r, float* b, int32_t* k,
                                int64_t n) {
  argmax_rows_impl(f, s, r, b, k, n);
}
EDGESEG_CLONES void argmax_rows(const int8_t* f, int64_t s, int64_t r, int8_t* b, int32_t* k,
                                int64_t n) {
  argmax_rows_impl(f, s, r, b, k, n);
}
EDGESEG_CLONES void argmax_rows(const uint8_t* f, int64_t s, int64_t r, uint8_t* b, int32_t* k,
                                int64_t n) {
  argmax_rows_impl(f, s, r, b, k, n);
}

// Threshold in the data's own domain: a score passes when it is strictly above `Threshold<T>`.
template <typename T>
using Threshold = std::conditional_t<std::is_floating_point_v<T>, float, int32_t>;

// Best class score (in the data's own type: quantized scores stay quantized) per anchor, and its
// class index for every anchor whose score passes `thr` (others are left unset). Every score is
// read once by a pure max pass over blocks of anchors; class indices are found afterwards, and
// only in blocks that have candidates. Returns whether any float score was NaN or infinite.
template <typename T>
bool best_class(const View2D& pred, int64_t num_classes, Threshold<T> thr, std::vector<T>& best,
                std::vector<int32_t>& cls) {
  const int64_t n = pred.cols;
  const T* data = static_cast<const T*>(pred.data);
  best.resize(static_cast<size_t>(n));
  cls.resize(static_cast<size_t>(n));
  T* b = best.data();
  int32_t* k = cls.data();
  int32_t bad = 0;
  constexpr T lowest = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                            : std::numeric_limits<T>::lowest();
  const auto row = [&](int32_t c, int64_t a0) {
    return data + (int64_t{4} + c) * pred.stride_row + a0;  // 4 + c overflows int32 near 2^31
  };
  if (pred.stride_col == 1) {
    constexpr int64_t kBlock = 2048;  // the running best stays in L1 for any element type
    for (int64_t a0 = 0; a0 < n; a0 += kBlock) {
      const int64_t len = std::min(kBlock, n - a0);
      std::fill_n(b + a0, len, lowest);
      bad |= max_rows(row(0, a0), pred.stride_row, num_classes, b + a0, len);
      int64_t passing = 0;
      for (int64_t a = a0; a < a0 + len; ++a) passing += static_cast<Threshold<T>>(b[a]) > thr;
      if (passing == 0) continue;
      if (passing * 8 > len) {  // many: one more branch-free pass over the (cached) block
        std::fill_n(b + a0, len, lowest);
        std::fill_n(k + a0, len, 0);
        argmax_rows(row(0, a0), pred.stride_row, num_classes, b + a0, k + a0, len);
      } else {  // few: the first class reaching each candidate's maximum
        for (int64_t a = a0; a < a0 + len; ++a) {
          if (!(static_cast<Threshold<T>>(b[a]) > thr)) continue;
          int32_t c = 0;
          while (row(c, a)[0] != b[a]) ++c;
          k[a] = c;
        }
      }
    }
  } else {
    for (int64_t a = 0; a < n; ++a) {
      const T* col = data + a * pred.stride_col + 4 * pred.stride_row;
      T top = lowest;
      int32_t arg = 0;
      for (int32_t c = 0; c < num_classes; ++c) {
        const T v = col[c * pred.stride_row];
        if constexpr (std::is_floating_point_v<T>) bad |= !std::isfinite(v);
        if (v > top) {
          top = v;
          arg = c;
        }
      }
      b[a] = top;
      k[a] = arg;
    }
  }
  return bad != 0;
}

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

template <typename T>
std::vector<Candidate> candidates(const View2D& pred, int64_t num_classes,
                                  const DecodeOptions& opt) {
  thread_local std::vector<T> best;
  thread_local std::vector<int32_t> cls;
  Threshold<T> thr;
  if constexpr (std::is_floating_point_v<T>) {
    thr = opt.conf;
  } else {
    thr = quantized_threshold<T>(opt.conf, pred.quant) - 1;
  }
  if (best_class<T>(pred, num_classes, thr, best, cls))
    throw InvalidArgument(
        "model output has NaN or infinite class scores; the model or its quantization is broken "
        "(run `edgeseg info MODEL` to inspect it)");
  std::vector<Candidate> cand;
  const T* b = best.data();
  const int32_t* k = cls.data();
  for (int64_t a = 0; a < pred.cols; ++a) {
    if (static_cast<Threshold<T>>(b[a]) > thr && allowed(opt, k[a])) {
      // only survivors are dequantized
      cand.push_back({real(b[a], pred.quant), static_cast<int32_t>(a), k[a]});
    }
  }
  return cand;
}

// Scores are probabilities (the graph ends in a sigmoid): a score above 1 means logits or a wrong
// output, which would otherwise pass every threshold silently. Quantized scores may round up by up
// to one step.
void check_score(float score, const Quant& quant, bool quantized) {
  const float limit = 1.0f + (quantized ? std::max(quant.scale, 1e-3f) : 1e-3f);
  if (score > limit)
    throw InvalidArgument(
        "model output has class scores above 1 (up to " + std::to_string(score) +
        "); edgeseg expects probabilities: is the sigmoid missing from the graph, "
        "or is this output not the detections?");
}

void check_finite(const float* v, int64_t n, const char* what) {
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(v[i]))
      throw InvalidArgument(std::string("model output has NaN or infinite ") + what +
                            "; the model or its quantization is broken (run `edgeseg info "
                            "MODEL` to inspect it)");
  }
}

}  // namespace

Detections decode_yolo(const View2D& pred, int64_t num_classes, const DecodeOptions& opt) {
  check_view(pred, "prediction");
  check_num_classes(num_classes);
  if (pred.rows - 4 < num_classes)  // not rows < 4 + num_classes: that sum can overflow
    throw InvalidArgument("prediction has " + std::to_string(pred.rows) +
                          " features per anchor; expected at least 4 box + " +
                          std::to_string(num_classes) + " class scores");
  if (pred.cols > std::numeric_limits<int32_t>::max())
    throw InvalidArgument("too many anchors (" + std::to_string(pred.cols) + ")");
  check_options(opt, num_classes);
  const int64_t nm = pred.rows - 4 - num_classes;
  Detections out;
  out.num_coeffs = nm;

  std::vector<Candidate> cand;
  switch (pred.dtype) {
    case DType::kInt8:
      cand = candidates<int8_t>(pred, num_classes, opt);
      break;
    case DType::kUInt8:
      cand = candidates<uint8_t>(pred, num_classes, opt);
      break;
    default:
      cand = candidates<float>(pred, num_classes, opt);
  }
  // Candidates are in anchor order here; they are ordered by descending score with std::sort and a
  // comparator on the score alone, which is exactly how the reference (PyTorch's CPU argsort)
  // orders them, ties included. Ties are rare in float outputs and common in quantized ones,
  // where the order decides which of two equal-score overlapping boxes NMS keeps.
  auto by_score = [](const Candidate& x, const Candidate& y) { return x.score > y.score; };
  std::sort(cand.begin(), cand.end(), by_score);
  if (!cand.empty()) check_score(cand[0].score, pred.quant, pred.dtype != DType::kFloat32);
  if (static_cast<int64_t>(cand.size()) > opt.pre_nms_topk) {
    cand.resize(static_cast<size_t>(opt.pre_nms_topk));
    std::sort(cand.begin(), cand.end(), by_score);  // the reference sorts the kept ones again
  }

  const int64_t m = static_cast<int64_t>(cand.size());
  std::vector<float> boxes(static_cast<size_t>(4 * m));
  std::vector<int32_t> cand_cls(static_cast<size_t>(m));
  std::vector<int64_t> order(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) {
    const int64_t a = cand[i].anchor;
    // Scaled before halving, in this order, as the reference denormalizes and then converts.
    const float cx = pred.at(0, a) * opt.box_scale_x, cy = pred.at(1, a) * opt.box_scale_y;
    const float hw = pred.at(2, a) * opt.box_scale_x / 2, hh = pred.at(3, a) * opt.box_scale_y / 2;
    float* b = boxes.data() + 4 * i;
    b[0] = cx - hw;
    b[1] = cy - hh;
    b[2] = cx + hw;
    b[3] = cy + hh;
    cand_cls[i] = cand[i].cls;
    order[i] = i;
  }
  check_finite(boxes.data(), 4 * m, "box coordinates");
  const std::vector<int64_t> keep = nms_ordered(boxes.data(), cand_cls.data(), order.data(), m,
                                                opt.iou, opt.max_det, opt.agnostic);

  const size_t k = keep.size();
  int64_t coeff_count;  // k <= cols, nm <= rows, but rows * cols of a broadcast view may not fit
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
    for (int64_t c = 0; c < nm; ++c) out.coeffs[j * nm + c] = pred.at(4 + num_classes + c, a);
  }
  check_finite(out.coeffs.data(), static_cast<int64_t>(out.coeffs.size()), "mask coefficients");
  return out;
}

Detections decode_yolo_e2e(const View2D& rows, int64_t num_classes, const DecodeOptions& opt) {
  check_view(rows, "prediction");
  if (rows.cols < 6)
    throw InvalidArgument("end-to-end prediction rows have " + std::to_string(rows.cols) +
                          " values; expected x1 y1 x2 y2 score class and mask coefficients");
  check_num_classes(num_classes);
  check_options(opt, num_classes);
  const int64_t nm = rows.cols - 6;
  Detections out;
  out.num_coeffs = nm;
  for (int64_t r = 0; r < rows.rows && out.size() < opt.max_det; ++r) {
    const float score = rows.at(r, 4);
    if (!std::isfinite(score))
      throw InvalidArgument(
          "model output has NaN or infinite scores; the model or its quantization is broken");
    if (!(score > opt.conf)) continue;
    check_score(score, rows.quant, rows.dtype != DType::kFloat32);
    const float cls_f = rows.at(r, 5);
    // Range-check the float before converting: a huge value must not wrap into a valid id.
    const bool in_range = cls_f > -0.5f && cls_f < static_cast<float>(num_classes) - 0.5f;
    const int32_t cls = in_range ? static_cast<int32_t>(std::lround(cls_f)) : -1;
    if (cls < 0 || cls >= num_classes)
      throw InvalidArgument("end-to-end prediction has class id " + std::to_string(cls_f) +
                            " outside [0, " + std::to_string(num_classes) + ")");
    // Float class ids are whole numbers; a fraction means this column is not the class (quantized
    // ones dequantize to near-whole values and are rounded).
    if (rows.dtype == DType::kFloat32 && std::fabs(cls_f - static_cast<float>(cls)) > 1e-3f)
      throw InvalidArgument("end-to-end prediction has class id " + std::to_string(cls_f) +
                            ", not a whole number: is this output x1 y1 x2 y2 score class ...?");
    if (!allowed(opt, cls)) continue;
    for (int c = 0; c < 4; ++c)
      out.boxes.push_back(rows.at(r, c) * (c % 2 == 0 ? opt.box_scale_x : opt.box_scale_y));
    out.scores.push_back(score);
    out.classes.push_back(cls);
    for (int64_t c = 0; c < nm; ++c) out.coeffs.push_back(rows.at(r, 6 + c));
  }
  check_finite(out.boxes.data(), static_cast<int64_t>(out.boxes.size()), "box coordinates");
  check_finite(out.coeffs.data(), static_cast<int64_t>(out.coeffs.size()), "mask coefficients");
  return out;
}

}  // namespace edgeseg
