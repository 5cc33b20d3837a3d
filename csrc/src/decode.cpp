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
#include "edgeseg/core.hpp"
#include "edgeseg/split.hpp"

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

// Threshold in the data's own domain: a score passes when it is strictly above `Threshold<T>`.
template <typename T>
using Threshold = std::conditional_t<std::is_floating_point_v<T>, float, int32_t>;

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

[[noreturn]] void throw_nonfinite_scores() {
  throw InvalidArgument(
      "model output has NaN or infinite class scores; the model or its quantization is broken "
      "(run `edgeseg info MODEL` to inspect it)");
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

// Candidates of an anchor-based head with objectness (YOLOv5 / YOLOv7-seg): row `obj_row` of
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

void check_finite(const float* v, int64_t n, const char* what) {
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

float quant_step(const View2D& v) { return v.dtype == DType::kFloat32 ? 0.f : v.quant.scale; }

// Candidates of one level of a split head. With a score sum (RKNN), a cell is looked at only when
// its sum shows some class may pass: no class probability exceeds the sum, and quantization moves
// each of the two values by at most half a step, so a cell is skipped only when its sum is below
// conf by more than both steps together. Then its classes are scanned in their own dtype.
template <typename T>
void level_candidates(const SplitLevel& lv, int64_t num_classes, const DecodeOptions& opt,
                      int32_t anchor0, std::vector<Candidate>& cand) {
  const View2D& sc = lv.scores;
  if (lv.score_sum.rows == 0) return candidates<T>(sc, 0, num_classes, opt, anchor0, cand);
  const Threshold<T> thr = raw_threshold<T>(opt.conf, sc.quant);
  const float margin = quant_step(lv.score_sum) + quant_step(sc);
  const T* data = static_cast<const T*>(sc.data);
  for (int64_t cell = 0; cell < sc.cols; ++cell) {
    const float sum = lv.score_sum.at(0, cell);
    if (std::isnan(sum)) throw_nonfinite_scores();
    if (!(sum + margin > opt.conf)) continue;
    const T* col = data + cell * sc.stride_col;
    T top = col[0];
    int32_t arg = 0;
    for (int32_t c = 0; c < num_classes; ++c) {
      const T v = col[c * sc.stride_row];
      if constexpr (std::is_floating_point_v<T>) {
        if (!std::isfinite(v)) throw_nonfinite_scores();
      }
      if (v > top) {
        top = v;
        arg = c;
      }
    }
    if (static_cast<Threshold<T>>(top) > thr && allowed(opt, arg))
      cand.push_back({real(top, sc.quant), static_cast<int32_t>(anchor0 + cell), arg});
  }
}

void check_level(const SplitLevel& lv, size_t i, int64_t num_classes, int64_t num_coeffs) {
  const std::string at = " of level " + std::to_string(i);
  check_view(lv.boxes, ("boxes" + at).c_str());
  check_view(lv.scores, ("scores" + at).c_str());
  check_view(lv.coeffs, ("coefficients" + at).c_str());
  if (lv.score_sum.rows != 0) check_view(lv.score_sum, ("score sum" + at).c_str());
  if (lv.grid_h < 1 || lv.grid_w < 1 || lv.grid_h > (int64_t{1} << 20) ||
      lv.grid_w > (int64_t{1} << 20))
    throw InvalidArgument("grid" + at + " is " + std::to_string(lv.grid_h) + "x" +
                          std::to_string(lv.grid_w) + "; expected sides in 1..1048576");
  if (!(lv.stride > 0.f && std::isfinite(lv.stride)))
    throw InvalidArgument("stride" + at + " must be positive and finite");
  const int64_t cells = lv.grid_h * lv.grid_w;
  const auto cols = [&](const View2D& v, const char* what) {
    if (v.cols != cells)
      throw InvalidArgument(std::string(what) + at + " has " + std::to_string(v.cols) +
                            " cells; the " + std::to_string(lv.grid_h) + "x" +
                            std::to_string(lv.grid_w) + " grid has " + std::to_string(cells));
  };
  cols(lv.boxes, "boxes");
  cols(lv.scores, "scores");
  cols(lv.coeffs, "coefficients");
  if (lv.boxes.rows < 4 || lv.boxes.rows % 4 != 0 || lv.boxes.rows > 4 * 256)
    throw InvalidArgument("boxes" + at + " have " + std::to_string(lv.boxes.rows) +
                          " channels; expected 4 sides x 1..256 distance bins");
  if (lv.scores.rows != num_classes)
    throw InvalidArgument("scores" + at + " have " + std::to_string(lv.scores.rows) +
                          " channels; expected one per class (" + std::to_string(num_classes) +
                          ")");
  if (lv.coeffs.rows != num_coeffs)
    throw InvalidArgument("coefficients" + at + " have " + std::to_string(lv.coeffs.rows) +
                          " channels; level 0 has " + std::to_string(num_coeffs));
  if (lv.score_sum.rows != 0) {
    if (lv.score_sum.rows != 1)
      throw InvalidArgument("score sum" + at + " has " + std::to_string(lv.score_sum.rows) +
                            " channels; expected 1");
    cols(lv.score_sum, "score sum");
  }
}

// Box of one cell: distances from the DFL expectation (softmax over each side's bins, then the
// bin-weighted sum, as the fused graph's Softmax and 1x1 convolution), then the fused graph's
// dist2bbox arithmetic in its order (centre and size, times the stride), then corners.
void split_box(const SplitLevel& lv, int64_t cell, float* b) {
  const int64_t bins = lv.boxes.rows / 4;
  float d[4];
  float e[256];
  for (int side = 0; side < 4; ++side) {
    if (bins == 1) {
      d[side] = lv.boxes.at(side, cell);
      continue;
    }
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < bins; ++i) {
      e[i] = lv.boxes.at(side * bins + i, cell);
      top = std::max(top, e[i]);
    }
    float sum = 0.f;
    for (int64_t i = 0; i < bins; ++i) sum += (e[i] = std::exp(e[i] - top));
    float dist = 0.f;
    for (int64_t i = 0; i < bins; ++i) dist += e[i] / sum * static_cast<float>(i);
    d[side] = dist;
  }
  const float ax = static_cast<float>(cell % lv.grid_w) + 0.5f;
  const float ay = static_cast<float>(cell / lv.grid_w) + 0.5f;
  const float x1 = ax - d[0], y1 = ay - d[1], x2 = ax + d[2], y2 = ay + d[3];
  const float cx = (x1 + x2) / 2 * lv.stride, cy = (y1 + y2) / 2 * lv.stride;
  const float hw = (x2 - x1) * lv.stride / 2, hh = (y2 - y1) * lv.stride / 2;
  b[0] = cx - hw;
  b[1] = cy - hh;
  b[2] = cx + hw;
  b[3] = cy + hh;
}

void check_anchor_level(const AnchorLevel& lv, size_t i, int64_t num_classes, int64_t num_coeffs) {
  const std::string at = " of level " + std::to_string(i);
  check_view(lv.preds, ("predictions" + at).c_str());
  check_view(lv.coeffs, ("coefficients" + at).c_str());
  if (lv.grid_h < 1 || lv.grid_w < 1 || lv.grid_h > (int64_t{1} << 20) ||
      lv.grid_w > (int64_t{1} << 20))
    throw InvalidArgument("grid" + at + " is " + std::to_string(lv.grid_h) + "x" +
                          std::to_string(lv.grid_w) + "; expected sides in 1..1048576");
  if (!(lv.stride > 0.f && std::isfinite(lv.stride)))
    throw InvalidArgument("stride" + at + " must be positive and finite");
  if (lv.anchors.empty() || lv.anchors.size() % 2 != 0 || lv.anchors.size() > 2 * 64)
    throw InvalidArgument("anchors" + at + " must be 1..64 (w, h) pairs, got " +
                          std::to_string(lv.anchors.size()) + " values");
  for (const float v : lv.anchors) {
    if (!(v > 0.f && std::isfinite(v)))
      throw InvalidArgument("anchors" + at + " must be positive and finite, got " +
                            std::to_string(v));
  }
  const int64_t na = static_cast<int64_t>(lv.anchors.size() / 2);
  const int64_t cells = lv.grid_h * lv.grid_w;
  const auto cols = [&](const View2D& v, const char* what) {
    if (v.cols != cells)
      throw InvalidArgument(std::string(what) + at + " have " + std::to_string(v.cols) +
                            " cells; the " + std::to_string(lv.grid_h) + "x" +
                            std::to_string(lv.grid_w) + " grid has " + std::to_string(cells));
  };
  cols(lv.preds, "predictions");
  cols(lv.coeffs, "coefficients");
  if (lv.preds.rows % na != 0 || lv.preds.rows / na - 5 != num_classes)
    throw InvalidArgument("predictions" + at + " have " + std::to_string(lv.preds.rows) +
                          " channels; expected " + std::to_string(na) +
                          " anchors x (4 box + 1 objectness + " + std::to_string(num_classes) +
                          " classes)");
  if (lv.coeffs.rows != na * num_coeffs)
    throw InvalidArgument("coefficients" + at + " have " + std::to_string(lv.coeffs.rows) +
                          " channels; expected " + std::to_string(na) + " anchors x " +
                          std::to_string(num_coeffs) + " coefficients");
}

// Box of anchor `a` of one cell, as YOLOv5's Detect decodes it: xy = (2 v - 0.5 + grid) x stride,
// wh = (2 v)^2 x anchor, then corners.
void anchor_box(const AnchorLevel& lv, int64_t a, int64_t cell, int64_t num_classes, float* b) {
  const int64_t r = a * (5 + num_classes);
  const float gx = static_cast<float>(cell % lv.grid_w), gy = static_cast<float>(cell / lv.grid_w);
  const float cx = (lv.preds.at(r, cell) * 2.f - 0.5f + gx) * lv.stride;
  const float cy = (lv.preds.at(r + 1, cell) * 2.f - 0.5f + gy) * lv.stride;
  const float tw = lv.preds.at(r + 2, cell) * 2.f, th = lv.preds.at(r + 3, cell) * 2.f;
  const float hw = tw * tw * lv.anchors[2 * a] / 2, hh = th * th * lv.anchors[2 * a + 1] / 2;
  b[0] = cx - hw;
  b[1] = cy - hh;
  b[2] = cx + hw;
  b[3] = cy + hh;
}

}  // namespace

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

Detections decode_yolo_split(const std::vector<SplitLevel>& levels, int64_t num_classes,
                             const DecodeOptions& opt) {
  check_num_classes(num_classes);
  check_options(opt, num_classes);
  if (levels.empty()) throw InvalidArgument("a split head needs at least one level");
  const int64_t nm = levels[0].coeffs.rows;
  std::vector<int64_t> first(levels.size() + 1, 0);  // anchor id of each level's first cell
  for (size_t i = 0; i < levels.size(); ++i) {
    check_level(levels[i], i, num_classes, nm);
    first[i + 1] = first[i] + levels[i].grid_h * levels[i].grid_w;
    if (first[i + 1] > std::numeric_limits<int32_t>::max())
      throw InvalidArgument("too many anchors (" + std::to_string(first[i + 1]) + ")");
  }
  std::vector<Candidate> cand;
  float step = 0.f;
  for (size_t i = 0; i < levels.size(); ++i) {
    const auto a0 = static_cast<int32_t>(first[i]);
    switch (levels[i].scores.dtype) {
      case DType::kInt8:
        level_candidates<int8_t>(levels[i], num_classes, opt, a0, cand);
        break;
      case DType::kUInt8:
        level_candidates<uint8_t>(levels[i], num_classes, opt, a0, cand);
        break;
      default:
        level_candidates<float>(levels[i], num_classes, opt, a0, cand);
    }
    step = std::max(step, quant_step(levels[i].scores));
  }
  const auto locate = [&](int64_t a) {  // (level, cell) of an anchor id
    size_t i = 0;
    while (a >= first[i + 1]) ++i;
    return std::pair<const SplitLevel&, int64_t>(levels[i], a - first[i]);
  };
  return select(
      cand, nm, opt, step,
      [&](int64_t a, float* b) {
        auto [lv, cell] = locate(a);
        split_box(lv, cell, b);
      },
      [&](int64_t a, int64_t c) {
        auto [lv, cell] = locate(a);
        return lv.coeffs.at(c, cell);
      });
}

Detections decode_yolov5_split(const std::vector<AnchorLevel>& levels, int64_t num_classes,
                               const DecodeOptions& opt) {
  check_num_classes(num_classes);
  check_options(opt, num_classes);
  if (levels.empty()) throw InvalidArgument("a split head needs at least one level");
  if (levels[0].anchors.empty() || levels[0].anchors.size() % 2 != 0)
    throw InvalidArgument("anchors of level 0 must be (w, h) pairs, got " +
                          std::to_string(levels[0].anchors.size()) + " values");
  const int64_t na0 = static_cast<int64_t>(levels[0].anchors.size() / 2);
  if (levels[0].coeffs.rows % na0 != 0)
    throw InvalidArgument("coefficients of level 0 have " + std::to_string(levels[0].coeffs.rows) +
                          " channels; expected " + std::to_string(na0) +
                          " anchors x the number of prototypes");
  const int64_t nm = levels[0].coeffs.rows / na0;
  std::vector<int64_t> first(levels.size() + 1, 0);  // anchor id of each level's first anchor
  for (size_t i = 0; i < levels.size(); ++i) {
    check_anchor_level(levels[i], i, num_classes, nm);
    const int64_t n = static_cast<int64_t>(levels[i].anchors.size() / 2);
    first[i + 1] = first[i] + levels[i].grid_h * levels[i].grid_w * n;
    if (first[i + 1] > std::numeric_limits<int32_t>::max())
      throw InvalidArgument("too many anchors (" + std::to_string(first[i + 1]) + ")");
  }
  std::vector<Candidate> cand;
  float score_step = 0.f;
  for (size_t i = 0; i < levels.size(); ++i) {
    const AnchorLevel& lv = levels[i];
    const int64_t cells = lv.grid_h * lv.grid_w;
    for (size_t a = 0; a < lv.anchors.size() / 2; ++a) {
      const auto a0 = static_cast<int32_t>(first[i] + static_cast<int64_t>(a) * cells);
      const int64_t obj_row = static_cast<int64_t>(a) * (5 + num_classes) + 4;
      objectness_candidates_of(lv.preds, obj_row, num_classes, opt, a0, cand);
    }
    // A product of two quantized probabilities, each at most 1 + one step (see decode_yolo).
    const float step = quant_step(lv.preds);
    score_step = std::max(score_step, step * (2.f + step));
  }
  struct Where {
    const AnchorLevel& lv;
    int64_t a, cell;
  };
  const auto locate = [&](int64_t id) {  // (level, anchor, cell) of an anchor id
    size_t i = 0;
    while (id >= first[i + 1]) ++i;
    const int64_t cells = levels[i].grid_h * levels[i].grid_w, local = id - first[i];
    return Where{levels[i], local / cells, local % cells};
  };
  return select(
      cand, nm, opt, score_step,
      [&](int64_t id, float* b) {
        const Where w = locate(id);
        anchor_box(w.lv, w.a, w.cell, num_classes, b);
      },
      [&](int64_t id, int64_t c) {
        const Where w = locate(id);
        return w.lv.coeffs.at(w.a * nm + c, w.cell);
      });
}

Detections decode_yolo_scored(const View2D& boxes, const View2D& scores, const int32_t* classes,
                              const View2D& coeffs, int64_t num_classes, const DecodeOptions& opt) {
  check_view(boxes, "boxes");
  check_view(scores, "scores");
  check_view(coeffs, "coefficients");
  check_num_classes(num_classes);
  check_options(opt, num_classes);
  const int64_t n = boxes.rows;
  if (boxes.cols != 4)
    throw InvalidArgument("boxes have " + std::to_string(boxes.cols) +
                          " values per anchor; expected x1 y1 x2 y2");
  if (scores.cols != 1 || scores.rows != n || coeffs.rows != n)
    throw InvalidArgument("scores (" + std::to_string(scores.rows) + ") and coefficients (" +
                          std::to_string(coeffs.rows) + ") must have one row per box (" +
                          std::to_string(n) + ")");
  if (n > std::numeric_limits<int32_t>::max())
    throw InvalidArgument("too many anchors (" + std::to_string(n) + ")");
  if (classes == nullptr && n > 0) throw InvalidArgument("class ids are null");
  std::vector<Candidate> cand;
  for (int64_t a = 0; a < n; ++a) {
    const float s = scores.at(a, 0);
    if (std::isnan(s) || std::isinf(s)) throw_nonfinite_scores();
    if (!(s > opt.conf)) continue;
    const int32_t c = classes[a];
    if (c < 0 || c >= num_classes)
      throw InvalidArgument("class id " + std::to_string(c) + " of anchor " + std::to_string(a) +
                            " is outside [0, " + std::to_string(num_classes) + ")");
    if (allowed(opt, c)) cand.push_back({s, static_cast<int32_t>(a), c});
  }
  return select(
      cand, coeffs.cols, opt, quant_step(scores),
      [&](int64_t a, float* b) {
        for (int c = 0; c < 4; ++c)
          b[c] = boxes.at(a, c) * (c % 2 == 0 ? opt.box_scale_x : opt.box_scale_y);
      },
      [&](int64_t a, int64_t c) { return coeffs.at(a, c); });
}

}  // namespace edgeseg
