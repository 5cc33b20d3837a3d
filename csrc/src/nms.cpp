#include <algorithm>
#include <limits>
#include <numeric>
#include <string>

#include "edgeseg/core.hpp"

namespace edgeseg {
namespace {

struct KeptBox {
  float x1, y1, x2, y2;
  double area;
};

// Strictly above the threshold suppresses, as torchvision does; a zero union (two degenerate
// boxes) counts as no overlap rather than NaN. Areas in double: float overflows past ~1.8e19.
bool overlaps(const KeptBox& a, const float* b, double b_area, float iou) {
  const double w = static_cast<double>(std::min(a.x2, b[2])) - std::max(a.x1, b[0]);
  const double h = static_cast<double>(std::min(a.y2, b[3])) - std::max(a.y1, b[1]);
  if (w <= 0.0 || h <= 0.0) return false;
  const double inter = w * h;
  const double uni = a.area + b_area - inter;
  // The ratio is rounded to float before the comparison, as the float32 reference does: an IoU
  // of exactly 7/10 against a threshold of 0.7 must not suppress.
  return uni > 0.0 && static_cast<float>(inter / uni) > iou;
}

void check_nms_args(const float* boxes, const int32_t* classes, int64_t n, float iou,
                    int64_t max_det, bool agnostic) {
  if (!(iou >= 0.f && iou <= 1.f)) throw InvalidArgument("iou must be in [0, 1]");
  if (max_det < 0) throw InvalidArgument("max_det must be >= 0");
  // 4 * n is the box array's length.
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / 4)
    throw InvalidArgument("number of boxes must be in [0, 2^61), got " + std::to_string(n));
  if (n > 0 && (boxes == nullptr || (!agnostic && classes == nullptr)))
    throw InvalidArgument("boxes or class ids are null");
}

}  // namespace

std::vector<int64_t> nms_ordered(const float* boxes, const int32_t* classes, const int64_t* order,
                                 int64_t n, float iou, int64_t max_det, bool agnostic) {
  check_nms_args(boxes, classes, n, iou, max_det, agnostic);
  if (n > 0 && order == nullptr) throw InvalidArgument("candidate order is null");
  // `order` indexes the boxes: an index outside [0, n) would read past them.
  for (int64_t k = 0; k < n; ++k) {
    if (order[k] < 0 || order[k] >= n)
      throw InvalidArgument("candidate order has index " + std::to_string(order[k]) +
                            " outside [0, " + std::to_string(n) + ")");
  }
  std::vector<int64_t> keep;
  if (n == 0 || max_det == 0) return keep;
  // An IoU (rounded to float) is never above 1: nothing is suppressed, so skip the pairwise loop
  // (callers that want every candidate in score order, such as the NMS variants, ask for this).
  if (iou >= 1.f) {
    keep.assign(order, order + std::min(n, max_det));
    return keep;
  }
  // Kept boxes grouped by class: a candidate only meets the boxes it can suppress it. Groups are
  // found by binary search in the sorted distinct classes (few, and no hashing per candidate).
  std::vector<int32_t> distinct;
  if (!agnostic) {
    distinct.reserve(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) distinct.push_back(classes[order[k]]);
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  }
  std::vector<std::vector<KeptBox>> kept(agnostic ? 1 : distinct.size());
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = order[k];
    const float* b = boxes + 4 * i;
    const double area = (static_cast<double>(b[2]) - b[0]) * (static_cast<double>(b[3]) - b[1]);
    auto& group = agnostic ? kept[0]
                           : kept[std::lower_bound(distinct.begin(), distinct.end(), classes[i]) -
                                  distinct.begin()];
    bool suppressed = false;
    for (const KeptBox& a : group) {
      if (overlaps(a, b, area, iou)) {
        suppressed = true;
        break;
      }
    }
    if (suppressed) continue;
    group.push_back({b[0], b[1], b[2], b[3], area});
    keep.push_back(i);
    if (static_cast<int64_t>(keep.size()) == max_det) break;
  }
  return keep;
}

std::vector<int64_t> nms(const float* boxes, const float* scores, const int32_t* classes, int64_t n,
                         float iou, int64_t max_det, bool agnostic) {
  check_nms_args(boxes, classes, n, iou, max_det, agnostic);
  if (n > 0 && scores == nullptr) throw InvalidArgument("scores are null");
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [scores](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  return nms_ordered(boxes, classes, order.data(), n, iou, max_det, agnostic);
}

}  // namespace edgeseg
