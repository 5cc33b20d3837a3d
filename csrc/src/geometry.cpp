#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "checks.hpp"
#include "edgeseg/core.hpp"

namespace edgeseg {
namespace {
// Python's round(): ties to even. The reference rounds this way, and 0.5 ties do occur
// (e.g. a 1280x853 image halved to 426.5 rows).
int64_t round_even(double v) { return static_cast<int64_t>(std::nearbyint(v)); }
}  // namespace

Letterbox make_letterbox(int64_t src_h, int64_t src_w, int64_t dst_h, int64_t dst_w,
                         Resize resize) {
  // Bounded above too: the gains and paddings are computed in double and rounded back to int64,
  // which is undefined for results past 2^63, and downstream crops are int32.
  if (src_h <= 0 || src_w <= 0 || src_h > detail::kMaxSide || src_w > detail::kMaxSide)
    throw InvalidArgument("image size must be in [1, 2147483647], got " + std::to_string(src_h) +
                          "x" + std::to_string(src_w));
  if (dst_h <= 0 || dst_w <= 0 || dst_h > detail::kMaxSide || dst_w > detail::kMaxSide)
    throw InvalidArgument("model input size must be in [1, 2147483647], got " +
                          std::to_string(dst_h) + "x" + std::to_string(dst_w));
  Letterbox lb;
  lb.src_h = src_h;
  lb.src_w = src_w;
  lb.dst_h = dst_h;
  lb.dst_w = dst_w;
  lb.resize = resize;
  if (resize == Resize::kStretch) {
    lb.new_h = dst_h;
    lb.new_w = dst_w;
    return lb;
  }
  if (resize == Resize::kKeepRatio) {
    // mmcv's rescale_size: int(side * scale + 0.5), i.e. halves round up; never past the input.
    const double r =
        std::min(static_cast<double>(dst_h) / src_h, static_cast<double>(dst_w) / src_w);
    lb.new_w = std::clamp<int64_t>(static_cast<int64_t>(src_w * r + 0.5), 1, dst_w);
    lb.new_h = std::clamp<int64_t>(static_cast<int64_t>(src_h * r + 0.5), 1, dst_h);
    return lb;
  }
  const double r = std::min(static_cast<double>(dst_h) / src_h, static_cast<double>(dst_w) / src_w);
  lb.new_w = std::max<int64_t>(round_even(src_w * r), 1);
  lb.new_h = std::max<int64_t>(round_even(src_h * r), 1);
  lb.pad_left = round_even((dst_w - lb.new_w) / 2.0 - 0.1);
  lb.pad_top = round_even((dst_h - lb.new_h) / 2.0 - 0.1);
  return lb;
}

void unletterbox_boxes(float* boxes, int64_t n, const Letterbox& lb) {
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / 4)
    throw InvalidArgument("number of boxes must be in [0, 2^61), got " + std::to_string(n));
  if (n > 0 && boxes == nullptr) throw InvalidArgument("boxes are null");
  // Any Letterbox not made by make_letterbox: the gains divide by these.
  if (lb.src_h < 1 || lb.src_w < 1 || lb.new_h < 1 || lb.new_w < 1)
    throw InvalidArgument("letterbox has a non-positive image or resized size");
  const float gain_x = static_cast<float>(static_cast<double>(lb.new_w) / lb.src_w);
  const float gain_y = static_cast<float>(static_cast<double>(lb.new_h) / lb.src_h);
  const float px = static_cast<float>(lb.pad_left), py = static_cast<float>(lb.pad_top);
  const float w = static_cast<float>(lb.src_w), h = static_cast<float>(lb.src_h);
  // Checked before any box is changed: std::clamp would pass NaN through as a box coordinate.
  for (int64_t i = 0; i < 4 * n; ++i) {
    if (!std::isfinite(boxes[i])) throw InvalidArgument("boxes contain NaN or infinity");
  }
  for (int64_t i = 0; i < n; ++i) {
    float* b = boxes + 4 * i;
    b[0] = std::clamp((b[0] - px) / gain_x, 0.f, w);
    b[1] = std::clamp((b[1] - py) / gain_y, 0.f, h);
    b[2] = std::clamp((b[2] - px) / gain_x, 0.f, w);
    b[3] = std::clamp((b[3] - py) / gain_y, 0.f, h);
  }
}

}  // namespace edgeseg
