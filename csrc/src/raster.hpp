// Box-cropped mask rendering shared by the mask assemblers (masks.cpp, dynconv.cpp): a family
// computes an instance's logits over a window of its low-resolution map, and this turns them
// into a bit-packed crop at source resolution through two chained bilinear resizes.
#pragma once

#include <cstdint>
#include <functional>

#include "edgeseg/core.hpp"

namespace edgeseg {
namespace detail {

// One axis of the resampling: the map axis of `proto_len` samples, upsampled `factor` times
// (bilinear, half-pixel centres, as PyTorch's scale_factor path), of which the window [lo, hi)
// is resized to `out_len` (bilinear, PyTorch's size path); output indices are source pixels.
struct ResampleAxis {
  int64_t proto_len, factor, lo, hi, out_len;
};

// Fills `out` (row-major, row length `row`, zero-initialised) with instance i's logits over
// map columns [x0, x1) and rows [y0, y1), the window's origin at out[0].
using WindowLogits = std::function<void(int64_t i, int64_t x0, int64_t x1, int64_t y0, int64_t y1,
                                        int64_t row, float* out)>;

// Masks of n instances, each cropped to its box (source pixels) and thresholded at logit 0,
// computed only inside the box. Validates boxes; sizes are the caller's to check.
Masks render_masks(const ResampleAxis& ax, const ResampleAxis& ay, int64_t proto_h, int64_t proto_w,
                   const float* boxes, int64_t n, int64_t src_h, int64_t src_w,
                   const MaskOptions& opt, const WindowLogits& logits);

}  // namespace detail
}  // namespace edgeseg
