// Fast NMS, Matrix NMS (boxes and masks), mask-IoU NMS and pairwise mask IoU (see
// edgeseg/nms_variants.hpp for the rules and the references they follow).
#include "edgeseg/nms_variants.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <utility>

#include "checks.hpp"
#include "packed_masks.hpp"

namespace edgeseg {
namespace {

using detail::PackedMask;

// Box coordinates beyond +-2^40 are refused: widths, heights and areas of such boxes stay far
// inside float's range (2^82 < 3.4e38), so no IoU turns into inf / inf = NaN.
constexpr float kMaxCoord = 1099511627776.f;

// Box IoU in float32, with the operations in the order of YOLACT's `jaccard` and torchvision's
// `box_iou`: clamped width x height, area_a + area_b - inter. No positive intersection, or a union
// that is not positive (degenerate boxes), is IoU 0 where the references may produce NaN.
inline float box_iou(const float* a, const float* b) {
  const float w = std::min(a[2], b[2]) - std::max(a[0], b[0]);
  const float h = std::min(a[3], b[3]) - std::max(a[1], b[1]);
  if (!(w > 0.f && h > 0.f)) return 0.f;
  const float inter = w * h;
  const float area_a = (a[2] - a[0]) * (a[3] - a[1]);
  const float area_b = (b[2] - b[0]) * (b[3] - b[1]);
  const float uni = area_a + area_b - inter;
  return uni > 0.f ? inter / uni : 0.f;
}

// Mask IoU in float32 from pixel counts, as mmdet's matrix NMS computes it from the float
// intersection matrix and areas: inter / (area_a + area_b - inter). Empty masks have IoU 0.
inline float mask_iou_f(const PackedMask& a, const PackedMask& b) {
  if (a.empty() || b.empty()) return 0.f;
  if (a.x0 >= b.x0 + b.w || b.x0 >= a.x0 + a.w || a.y0 >= b.y0 + b.h || b.y0 >= a.y0 + a.h)
    return 0.f;  // crops apart: nothing to count
  const int64_t inter = detail::intersection(a, 0, 0, b);
  if (inter == 0) return 0.f;
  const float fi = static_cast<float>(inter);
  return fi / (static_cast<float>(a.area) + static_cast<float>(b.area) - fi);
}

void check_count(int64_t n, const char* what) {
  // 4 * n is the box array's length; n * n the pairwise matrix's.
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / 4)
    throw InvalidArgument(std::string("number of ") + what + " must be in [0, 2^61), got " +
                          std::to_string(n));
}

void check_limit(int64_t v, const char* name) {
  if (v < -1)
    throw InvalidArgument(std::string(name) + " must be >= 0, or -1 for no limit, got " +
                          std::to_string(v));
}

void check_iou(float iou) {
  if (!(iou >= 0.f && iou <= 1.f))
    throw InvalidArgument("iou must be in [0, 1], got " + std::to_string(iou));
}

void check_scores(const float* scores, int64_t count) {
  if (count > 0 && scores == nullptr) throw InvalidArgument("scores are null");
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(scores[i]))
      throw InvalidArgument("scores contain NaN or infinity (score " + std::to_string(i) + ")");
  }
}

void check_boxes(const float* boxes, int64_t n) {
  if (n > 0 && boxes == nullptr) throw InvalidArgument("boxes are null");
  for (int64_t i = 0; i < 4 * n; ++i) {
    if (!(std::fabs(boxes[i]) <= kMaxCoord))  // also catches NaN
      throw InvalidArgument("boxes contain NaN, infinity or a coordinate beyond +-2^40 (box " +
                            std::to_string(i / 4) + ")");
  }
}

int64_t limit_of(int64_t v, int64_t n) { return v < 0 ? n : std::min(v, n); }

// Indices 0..n-1 by descending score, ties by lower index first.
std::vector<int64_t> by_score(const float* scores, int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [scores](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  return order;
}

// Positions 0..m-1 grouped by class (one group when agnostic): group id of each position.
std::vector<int64_t> groups_of(const std::vector<int32_t>& cls, bool agnostic, int64_t* count) {
  std::vector<int64_t> group(cls.size(), 0);
  if (agnostic || cls.empty()) {
    *count = 1;
    return group;
  }
  std::vector<int32_t> distinct(cls);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (size_t i = 0; i < cls.size(); ++i)
    group[i] = std::lower_bound(distinct.begin(), distinct.end(), cls[i]) - distinct.begin();
  *count = static_cast<int64_t>(distinct.size());
  return group;
}

// ---- Fast NMS ---------------------------------------------------------------------------------

struct FastEntry {
  int64_t index;
  float score;
  int32_t cls;
};

// One candidate set (already sorted best first and cut to top_k): appends the kept ones.
void fast_set(const float* boxes, const std::vector<FastEntry>& set, float iou,
              std::vector<FastEntry>* kept) {
  const size_t k = set.size();
  for (size_t j = 0; j < k; ++j) {
    const float* bj = boxes + 4 * set[j].index;
    // max_i<j IoU <= iou, so the first IoU above the threshold decides: the rest cannot lower
    // a maximum.
    bool keep = true;
    for (size_t i = 0; i < j && keep; ++i) keep = box_iou(boxes + 4 * set[i].index, bj) <= iou;
    if (keep) kept->push_back(set[j]);
  }
}

}  // namespace

NmsResult fast_nms(const ScoredBoxes& c, const FastNmsOptions& opt) {
  check_count(c.n, "boxes");
  check_iou(opt.iou);
  check_limit(opt.top_k, "top_k");
  check_limit(opt.max_det, "max_det");
  if (!std::isfinite(opt.conf))
    throw InvalidArgument("conf must be finite (negative: no second threshold)");
  if (c.num_classes < 0 || c.num_classes > std::numeric_limits<int32_t>::max())
    throw InvalidArgument("num_classes must be in [0, 2^31), got " + std::to_string(c.num_classes));
  const bool matrix = c.num_classes > 0;
  if (matrix && c.classes != nullptr)
    throw InvalidArgument("a score matrix carries the classes: class ids must not be given");
  int64_t score_count = c.n;
  if (matrix && detail::mul_overflows(c.n, c.num_classes, &score_count))
    throw InvalidArgument("the score matrix is too large");
  check_boxes(c.boxes, c.n);
  check_scores(c.scores, score_count);

  // The candidate sets, each best first (stable: ties by lower box index) and cut to top_k.
  std::vector<std::vector<FastEntry>> sets;
  auto better = [](const FastEntry& a, const FastEntry& b) {
    return a.score > b.score || (a.score == b.score && a.index < b.index);
  };
  auto finish_set = [&](std::vector<FastEntry>&& set) {
    const int64_t k = limit_of(opt.top_k, static_cast<int64_t>(set.size()));
    // A strict total order (score, then index), so a partial sort gives the stable top k.
    std::partial_sort(set.begin(), set.begin() + k, set.end(), better);
    set.resize(static_cast<size_t>(k));
    if (!set.empty()) sets.push_back(std::move(set));
  };
  if (matrix && !opt.agnostic) {
    for (int64_t cl = 0; cl < c.num_classes; ++cl) {
      std::vector<FastEntry> set(static_cast<size_t>(c.n));
      for (int64_t i = 0; i < c.n; ++i)
        set[i] = {i, c.scores[i * c.num_classes + cl], static_cast<int32_t>(cl)};
      finish_set(std::move(set));
    }
  } else if (matrix) {
    // cc_fast_nms: each box's best class (torch.max(dim=0): the first maximum).
    std::vector<FastEntry> set(static_cast<size_t>(c.n));
    for (int64_t i = 0; i < c.n; ++i) {
      const float* row = c.scores + i * c.num_classes;
      const int64_t best = std::max_element(row, row + c.num_classes) - row;
      set[i] = {i, row[best], static_cast<int32_t>(best)};
    }
    finish_set(std::move(set));
  } else {
    std::vector<FastEntry> all(static_cast<size_t>(c.n));
    for (int64_t i = 0; i < c.n; ++i) all[i] = {i, c.scores[i], c.classes ? c.classes[i] : 0};
    if (opt.agnostic) {
      finish_set(std::move(all));
    } else {
      // One set per class, classes in ascending order (the score matrix's column order).
      std::stable_sort(all.begin(), all.end(),
                       [](const FastEntry& a, const FastEntry& b) { return a.cls < b.cls; });
      size_t start = 0;
      while (start < all.size()) {
        size_t end = start;
        while (end < all.size() && all[end].cls == all[start].cls) ++end;
        finish_set(std::vector<FastEntry>(all.begin() + start, all.begin() + end));
        start = end;
      }
    }
  }

  std::vector<FastEntry> kept;
  for (const auto& set : sets) fast_set(c.boxes, set, opt.iou, &kept);
  if (opt.conf >= 0.f) {  // YOLACT's second_threshold: scores > conf
    kept.erase(std::remove_if(kept.begin(), kept.end(),
                              [&](const FastEntry& e) { return !(e.score > opt.conf); }),
               kept.end());
  }
  // The final sort over all classes: stable, so ties keep class-major, then rank, order (the
  // order of YOLACT's flattened [classes, top_k] matrix).
  std::stable_sort(kept.begin(), kept.end(),
                   [](const FastEntry& a, const FastEntry& b) { return a.score > b.score; });
  kept.resize(static_cast<size_t>(limit_of(opt.max_det, static_cast<int64_t>(kept.size()))));
  NmsResult out;
  out.keep.reserve(kept.size());
  out.scores.reserve(kept.size());
  out.classes.reserve(kept.size());
  for (const auto& e : kept) {
    out.keep.push_back(e.index);
    out.scores.push_back(e.score);
    out.classes.push_back(e.cls);
  }
  return out;
}

// ---- Matrix NMS -------------------------------------------------------------------------------

namespace {

void check_matrix_options(const MatrixNmsOptions& opt) {
  if (opt.kernel != MatrixKernel::kGaussian && opt.kernel != MatrixKernel::kLinear)
    throw InvalidArgument("kernel must be 'gaussian' or 'linear'");
  if (!(opt.sigma > 0.f && std::isfinite(opt.sigma)))
    throw InvalidArgument("sigma must be a positive finite number, got " +
                          std::to_string(opt.sigma));
  check_limit(opt.pre_topk, "pre_topk");
  check_limit(opt.max_det, "max_det");
  if (std::isnan(opt.filter_thr)) throw InvalidArgument("filter_thr must not be NaN");
}

// The kernel as mmdet computes it in float32: exp(-sigma * iou^2) or 1 - iou.
inline float kernel(float iou, const MatrixNmsOptions& opt) {
  if (opt.kernel == MatrixKernel::kGaussian) return std::exp(-opt.sigma * (iou * iou));
  return 1.f - iou;
}

// Matrix NMS over candidates `order` (sorted best first, cut to pre_topk) with iou(p, q) the IoU
// of positions p < q. Single pass over the upper triangle: compensate_p (the largest IoU of p
// with a candidate above it) is final before any q > p reads it, so no n x n matrix is held.
template <typename Iou>
NmsResult matrix_core(const std::vector<int64_t>& order, const float* scores,
                      const int32_t* classes, const MatrixNmsOptions& opt, Iou&& iou) {
  const int64_t m = static_cast<int64_t>(order.size());
  std::vector<int32_t> cls(static_cast<size_t>(m));
  for (int64_t p = 0; p < m; ++p) cls[p] = classes ? classes[order[p]] : 0;
  int64_t group_count = 0;
  const std::vector<int64_t> group = groups_of(cls, opt.agnostic, &group_count);
  std::vector<std::vector<int64_t>> members(static_cast<size_t>(group_count));
  std::vector<float> comp_kernel(static_cast<size_t>(m));  // f(compensate_p)
  std::vector<float> decayed(static_cast<size_t>(m));
  for (int64_t q = 0; q < m; ++q) {
    auto& same = members[group[q]];
    float comp = 0.f;
    // Terms with IoU 0 are f(0) / f(compensate_p) >= 1, and the first row (compensate 0) gives
    // exactly 1 or f(iou) <= 1, so the minimum starts at 1 and only overlapping pairs lower it.
    float decay = 1.f;
    for (const int64_t p : same) {
      const float v = iou(p, q);
      if (!(v > 0.f)) continue;
      comp = std::max(comp, v);
      const float term = kernel(v, opt) / comp_kernel[p];
      // 0 / 0 (a row whose compensation is complete, e.g. a duplicate, under the linear kernel)
      // is NaN in mmdet and poisons the column's minimum; here it lowers nothing. Another row
      // (the duplicate's original) then decays the candidate anyway.
      if (term < decay) decay = term;
    }
    comp_kernel[q] = kernel(comp, opt);
    decayed[q] = scores[order[q]] * decay;
    same.push_back(q);
  }
  std::vector<int64_t> pos;
  pos.reserve(static_cast<size_t>(m));
  for (int64_t q = 0; q < m; ++q) {
    if (!(opt.filter_thr > 0.f) || decayed[q] >= opt.filter_thr) pos.push_back(q);
  }
  // mmdet sorts the decayed scores again; ties keep the first sort's order here.
  std::stable_sort(pos.begin(), pos.end(),
                   [&](int64_t a, int64_t b) { return decayed[a] > decayed[b]; });
  pos.resize(static_cast<size_t>(limit_of(opt.max_det, static_cast<int64_t>(pos.size()))));
  NmsResult out;
  for (const int64_t q : pos) {
    out.keep.push_back(order[q]);
    out.scores.push_back(decayed[q]);
    out.classes.push_back(cls[q]);
  }
  return out;
}

std::vector<int64_t> pre_nms_order(const float* scores, int64_t n, int64_t pre_topk) {
  std::vector<int64_t> order = by_score(scores, n);
  order.resize(static_cast<size_t>(limit_of(pre_topk, n)));
  return order;
}

}  // namespace

NmsResult matrix_nms(const float* boxes, const float* scores, const int32_t* classes, int64_t n,
                     const MatrixNmsOptions& opt) {
  check_count(n, "boxes");
  check_matrix_options(opt);
  check_boxes(boxes, n);
  check_scores(scores, n);
  const std::vector<int64_t> order = pre_nms_order(scores, n, opt.pre_topk);
  return matrix_core(order, scores, classes, opt, [&](int64_t p, int64_t q) {
    return box_iou(boxes + 4 * order[p], boxes + 4 * order[q]);
  });
}

NmsResult mask_matrix_nms(const MaskCrops& masks, const float* scores, const int32_t* classes,
                          int64_t n, const MatrixNmsOptions& opt) {
  check_count(n, "masks");
  check_matrix_options(opt);
  detail::check_masks(masks, n, "masks");
  check_scores(scores, n);
  const std::vector<int64_t> order = pre_nms_order(scores, n, opt.pre_topk);
  std::vector<PackedMask> packed(order.size());
  for (size_t p = 0; p < order.size(); ++p)
    detail::pack(masks.bits + masks.offsets[order[p]], masks.rects + 4 * order[p], &packed[p]);
  return matrix_core(order, scores, classes, opt,
                     [&](int64_t p, int64_t q) { return mask_iou_f(packed[p], packed[q]); });
}

// ---- Mask NMS and pairwise mask IoU -----------------------------------------------------------

NmsResult mask_nms(const MaskCrops& masks, const float* scores, const int32_t* classes, int64_t n,
                   float iou, int64_t max_det, bool agnostic) {
  check_count(n, "masks");
  check_iou(iou);
  check_limit(max_det, "max_det");
  detail::check_masks(masks, n, "masks");
  check_scores(scores, n);
  const std::vector<int64_t> order = by_score(scores, n);
  std::vector<int32_t> cls(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) cls[i] = classes ? classes[i] : 0;
  int64_t group_count = 0;
  const std::vector<int64_t> group = groups_of(cls, agnostic, &group_count);
  std::vector<std::vector<PackedMask>> kept(static_cast<size_t>(group_count));
  const int64_t limit = limit_of(max_det, n);
  NmsResult out;
  PackedMask cand;
  for (int64_t k = 0; k < n && out.size() < limit; ++k) {
    const int64_t i = order[k];
    detail::pack(masks.bits + masks.offsets[i], masks.rects + 4 * i, &cand);
    auto& same = kept[group[i]];
    bool suppressed = false;
    // Strictly above the threshold suppresses, as box NMS (torchvision) does.
    for (const PackedMask& a : same) {
      if (mask_iou_f(a, cand) > iou) {
        suppressed = true;
        break;
      }
    }
    if (suppressed) continue;
    out.keep.push_back(i);
    out.scores.push_back(scores[i]);
    out.classes.push_back(cls[i]);
    if (!cand.empty()) same.push_back(std::move(cand));
    cand = PackedMask();
  }
  return out;
}

std::vector<float> pairwise_mask_iou(const MaskCrops& masks, int64_t n) {
  check_count(n, "masks");
  int64_t size = 0;
  if (detail::mul_overflows(n, n, &size))
    throw InvalidArgument("too many masks for a pairwise matrix (" + std::to_string(n) + ")");
  detail::check_masks(masks, n, "masks");
  std::vector<PackedMask> packed(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    detail::pack(masks.bits + masks.offsets[i], masks.rects + 4 * i, &packed[i]);
  std::vector<float> out(static_cast<size_t>(size), 0.f);
  for (int64_t i = 0; i < n; ++i) {
    if (packed[i].empty()) continue;
    out[i * n + i] = 1.f;
    for (int64_t j = i + 1; j < n; ++j)
      out[i * n + j] = out[j * n + i] = mask_iou_f(packed[i], packed[j]);
  }
  return out;
}

}  // namespace edgeseg
