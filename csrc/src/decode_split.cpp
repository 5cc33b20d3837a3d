// YOLO heads split for NPUs (edgeseg/split.hpp): per-stride DFL heads (RKNN, Hailo), per-stride
// anchor-based YOLOv5 heads (RKNN yolov5_seg) and heads with boxes and best classes decoded in the
// graph (Qualcomm AI Hub). Each tensor is read in its own dtype and quantization.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "checks.hpp"
#include "decode_common.hpp"
#include "edgeseg/core.hpp"
#include "edgeseg/split.hpp"

namespace edgeseg {
namespace {

using namespace decode_detail;  // NOLINT: the shared decoding pieces

// Candidates of one level of a split head. With a score sum (RKNN), a cell is looked at only when
// its sum shows some class may pass: no class probability exceeds the sum, and quantization moves
// each of the two values by at most half a step, so a cell is skipped only when its sum is below
// conf by more than both steps together. Then its classes are scanned in their own dtype.
template <typename T>
void level_candidates(const SplitLevel& lv, int64_t num_classes, const DecodeOptions& opt,
                      int32_t anchor0, std::vector<Candidate>& cand) {
  const View2D& sc = lv.scores;
  if (lv.score_sum.rows == 0) return candidates_of(sc, 0, num_classes, opt, anchor0, cand);
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

// A level's grid and stride (sides bounded so cells and anchor ids stay far from overflow).
void check_grid(int64_t grid_h, int64_t grid_w, float stride, const std::string& at) {
  if (grid_h < 1 || grid_w < 1 || grid_h > (int64_t{1} << 20) || grid_w > (int64_t{1} << 20))
    throw InvalidArgument("grid" + at + " is " + std::to_string(grid_h) + "x" +
                          std::to_string(grid_w) + "; expected sides in 1..1048576");
  if (!(stride > 0.f && std::isfinite(stride)))
    throw InvalidArgument("stride" + at + " must be positive and finite");
}

// A tensor of a level holds one column per grid cell; `what` names it ("boxes of level 0 has").
void check_cells(const View2D& v, const std::string& what, int64_t grid_h, int64_t grid_w) {
  const int64_t cells = grid_h * grid_w;
  if (v.cols != cells)
    throw InvalidArgument(what + " " + std::to_string(v.cols) + " cells; the " +
                          std::to_string(grid_h) + "x" + std::to_string(grid_w) + " grid has " +
                          std::to_string(cells));
}

void check_level(const SplitLevel& lv, size_t i, int64_t num_classes, int64_t num_coeffs) {
  const std::string at = " of level " + std::to_string(i);
  check_view(lv.boxes, ("boxes" + at).c_str());
  check_view(lv.scores, ("scores" + at).c_str());
  check_view(lv.coeffs, ("coefficients" + at).c_str());
  if (lv.score_sum.rows != 0) check_view(lv.score_sum, ("score sum" + at).c_str());
  check_grid(lv.grid_h, lv.grid_w, lv.stride, at);
  const auto cols = [&](const View2D& v, const char* what) {
    check_cells(v, std::string(what) + at + " has", lv.grid_h, lv.grid_w);
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
  check_grid(lv.grid_h, lv.grid_w, lv.stride, at);
  if (lv.anchors.empty() || lv.anchors.size() % 2 != 0 || lv.anchors.size() > 2 * 64)
    throw InvalidArgument("anchors" + at + " must be 1..64 (w, h) pairs, got " +
                          std::to_string(lv.anchors.size()) + " values");
  for (const float v : lv.anchors) {
    if (!(v > 0.f && std::isfinite(v)))
      throw InvalidArgument("anchors" + at + " must be positive and finite, got " +
                            std::to_string(v));
  }
  const int64_t na = static_cast<int64_t>(lv.anchors.size() / 2);
  const auto cols = [&](const View2D& v, const char* what) {
    check_cells(v, std::string(what) + at + " have", lv.grid_h, lv.grid_w);
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
