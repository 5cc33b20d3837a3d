#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "checks.hpp"
#include "clones.hpp"
#include "decode_common.hpp"
#include "edgeseg/core.hpp"

namespace edgeseg {
namespace {

using namespace decode_detail;  // NOLINT: the shared decoding pieces

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

// Maximum of n contiguous values; for float data, whether any was NaN or infinite.
template <typename T>
inline __attribute__((always_inline)) int max_column_impl(const T* __restrict col, int64_t n,
                                                          T* top) {
  int32_t bad = 0;
  T m = *top;
  for (int64_t c = 0; c < n; ++c) {
    const T v = col[c];
    if constexpr (std::is_floating_point_v<T>) {
      const T zero_if_finite = v - v;
      bad |= static_cast<int32_t>(zero_if_finite != zero_if_finite);
    }
    m = v > m ? v : m;
  }
  *top = m;
  return bad;
}
EDGESEG_CLONES int max_column(const float* c, int64_t n, float* t) {
  return max_column_impl(c, n, t);
}
EDGESEG_CLONES int max_column(const int8_t* c, int64_t n, int8_t* t) {
  return max_column_impl(c, n, t);
}
EDGESEG_CLONES int max_column(const uint8_t* c, int64_t n, uint8_t* t) {
  return max_column_impl(c, n, t);
}

// Best class score (in the data's own type: quantized scores stay quantized) per anchor, and its
// class index for every anchor whose score passes `thr` (others are left unset). Every score is
// read once by a pure max pass over blocks of anchors; class indices are found afterwards, and
// only in blocks that have candidates. Returns whether any float score was NaN or infinite.
template <typename T>
bool best_class(const View2D& pred, int64_t first_row, int64_t num_classes, Threshold<T> thr,
                std::vector<T>& best, std::vector<int32_t>& cls) {
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
    return data + (first_row + c) * pred.stride_row + a0;  // first_row + c overflows int32
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
    // Anchor-major data (NHWC split heads, transposed outputs): a branch-free maximum down each
    // column (vectorized when the classes are contiguous), the class index only for candidates.
    const int64_t sr = pred.stride_row;
    for (int64_t a = 0; a < n; ++a) {
      const T* col = data + a * pred.stride_col + first_row * sr;
      T top = lowest;
      if (sr == 1) {
        bad |= max_column(col, num_classes, &top);
      } else {
        for (int64_t c = 0; c < num_classes; ++c) {
          const T v = col[c * sr];
          if constexpr (std::is_floating_point_v<T>) bad |= !std::isfinite(v);
          top = v > top ? v : top;
        }
      }
      b[a] = top;
      int32_t arg = 0;
      if (static_cast<Threshold<T>>(top) > thr) {
        while (col[arg * sr] != top) ++arg;  // the first class reaching the maximum, as argmax
      }
      k[a] = arg;
    }
  }
  return bad != 0;
}

// Candidates among the anchors (columns) of `pred`, whose class scores are rows first_row ..
// first_row + num_classes; anchor ids are offset by `anchor0`.
template <typename T>
void candidates(const View2D& pred, int64_t first_row, int64_t num_classes,
                const DecodeOptions& opt, int32_t anchor0, std::vector<Candidate>& cand) {
  thread_local std::vector<T> best;
  thread_local std::vector<int32_t> cls;
  const Threshold<T> thr = raw_threshold<T>(opt.conf, pred.quant);
  if (best_class<T>(pred, first_row, num_classes, thr, best, cls)) throw_nonfinite_scores();
  const T* b = best.data();
  const int32_t* k = cls.data();
  for (int64_t a = 0; a < pred.cols; ++a) {
    if (static_cast<Threshold<T>>(b[a]) > thr && allowed(opt, k[a])) {
      // only survivors are dequantized
      cand.push_back({real(b[a], pred.quant), static_cast<int32_t>(anchor0 + a), k[a]});
    }
  }
}

// `pred` is the objectness, the num_classes rows after it the class probabilities. As the reference
// does: anchors whose objectness is above conf, then each one's best class, score = objectness x
// class probability in float (after dequantization), kept when above conf. Since class
// probabilities are at most 1, the objectness threshold is one compare in the data's own type
// (integer when quantized), and only the anchors passing it are scanned for their class. Objectness
// and the best class probability of those are checked to be probabilities.
template <typename T>
void objectness_candidates(const View2D& pred, int64_t obj_row, int64_t num_classes,
                           const DecodeOptions& opt, int32_t anchor0,
                           std::vector<Candidate>& cand) {
  const Threshold<T> thr = raw_threshold<T>(opt.conf, pred.quant);
  const bool quantized = !std::is_floating_point_v<T>;
  const T* data = static_cast<const T*>(pred.data);
  const T* objs = data + obj_row * pred.stride_row;
  for (int64_t a = 0; a < pred.cols; ++a) {
    const T o = objs[a * pred.stride_col];
    if constexpr (std::is_floating_point_v<T>) {
      if (!std::isfinite(o)) throw_nonfinite_scores();
    }
    if (!(static_cast<Threshold<T>>(o) > thr)) continue;
    const T* col = data + a * pred.stride_col + (obj_row + 1) * pred.stride_row;
    T top = col[0];
    int32_t arg = 0;
    for (int32_t c = 0; c < num_classes; ++c) {
      const T v = col[c * pred.stride_row];
      if constexpr (std::is_floating_point_v<T>) {
        if (!std::isfinite(v)) throw_nonfinite_scores();
      }
      if (v > top) {  // the first maximum, as torch.max
        top = v;
        arg = c;
      }
    }
    const float obj = real(o, pred.quant), cls = real(top, pred.quant);
    check_score(obj, pred.quant, quantized);
    check_score(cls, pred.quant, quantized);
    const float score = obj * cls;
    if (score > opt.conf && allowed(opt, arg))
      cand.push_back({score, static_cast<int32_t>(anchor0 + a), arg});
  }
}

}  // namespace

namespace decode_detail {

void candidates_of(const View2D& pred, int64_t first_row, int64_t num_classes,
                   const DecodeOptions& opt, int32_t anchor0, std::vector<Candidate>& cand) {
  switch (pred.dtype) {
    case DType::kInt8:
      return candidates<int8_t>(pred, first_row, num_classes, opt, anchor0, cand);
    case DType::kUInt8:
      return candidates<uint8_t>(pred, first_row, num_classes, opt, anchor0, cand);
    default:
      return candidates<float>(pred, first_row, num_classes, opt, anchor0, cand);
  }
}

// Objectness in row `obj_row` of `pred`, class probabilities in the num_classes rows after it;
// anchor ids are offset by `anchor0`.
void objectness_candidates_of(const View2D& pred, int64_t obj_row, int64_t num_classes,
                              const DecodeOptions& opt, int32_t anchor0,
                              std::vector<Candidate>& cand) {
  switch (pred.dtype) {
    case DType::kInt8:
      return objectness_candidates<int8_t>(pred, obj_row, num_classes, opt, anchor0, cand);
    case DType::kUInt8:
      return objectness_candidates<uint8_t>(pred, obj_row, num_classes, opt, anchor0, cand);
    default:
      return objectness_candidates<float>(pred, obj_row, num_classes, opt, anchor0, cand);
  }
}

}  // namespace decode_detail

using namespace decode_detail;  // NOLINT

Detections decode_yolo(const View2D& pred, int64_t num_classes, const DecodeOptions& opt,
                       const View2D* coeffs, bool objectness) {
  check_view(pred, "prediction");
  check_num_classes(num_classes);
  if (objectness) {
    if (coeffs != nullptr)
      throw InvalidArgument("separate coefficients are not supported with an objectness row");
    if (pred.rows - 5 < num_classes)  // not rows < 5 + num_classes: that sum can overflow
      throw InvalidArgument("prediction has " + std::to_string(pred.rows) +
                            " features per anchor; expected at least 4 box + 1 objectness + " +
                            std::to_string(num_classes) + " class scores");
  }
  if (pred.rows - 4 < num_classes)  // not rows < 4 + num_classes: that sum can overflow
    throw InvalidArgument("prediction has " + std::to_string(pred.rows) +
                          " features per anchor; expected at least 4 box + " +
                          std::to_string(num_classes) + " class scores");
  if (pred.cols > std::numeric_limits<int32_t>::max())
    throw InvalidArgument("too many anchors (" + std::to_string(pred.cols) + ")");
  check_options(opt, num_classes);
  if (coeffs != nullptr) {  // coefficients in a tensor of their own (EdgeFirst's two-way split)
    check_view(*coeffs, "coefficients");
    if (pred.rows != 4 + num_classes)
      throw InvalidArgument("prediction has " + std::to_string(pred.rows) +
                            " features per anchor; with separate coefficients expected 4 box + " +
                            std::to_string(num_classes) + " class scores");
    if (coeffs->cols != pred.cols)
      throw InvalidArgument("coefficients have " + std::to_string(coeffs->cols) +
                            " anchors; the prediction has " + std::to_string(pred.cols));
  }
  const int64_t first_coeff = (objectness ? 5 : 4) + num_classes;
  const int64_t nm = coeffs != nullptr ? coeffs->rows : pred.rows - first_coeff;
  std::vector<Candidate> cand;
  if (objectness)
    objectness_candidates_of(pred, 4, num_classes, opt, 0, cand);
  else
    candidates_of(pred, 4, num_classes, opt, 0, cand);
  // A product of two quantized probabilities, each checked to be at most 1 + one step, is at most
  // 1 + 2 steps + a step squared.
  const float step = quant_step(pred);
  const float score_step = objectness ? step * (2.f + step) : step;
  const auto box = [&](int64_t a, float* b) {
    // Scaled before halving, in this order, as the reference denormalizes and then converts.
    const float cx = pred.at(0, a) * opt.box_scale_x, cy = pred.at(1, a) * opt.box_scale_y;
    const float hw = pred.at(2, a) * opt.box_scale_x / 2, hh = pred.at(3, a) * opt.box_scale_y / 2;
    b[0] = cx - hw;
    b[1] = cy - hh;
    b[2] = cx + hw;
    b[3] = cy + hh;
  };
  if (coeffs != nullptr)
    return select(cand, nm, opt, score_step, box,
                  [&](int64_t a, int64_t c) { return coeffs->at(c, a); });
  return select(cand, nm, opt, score_step, box,
                [&](int64_t a, int64_t c) { return pred.at(first_coeff + c, a); });
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
