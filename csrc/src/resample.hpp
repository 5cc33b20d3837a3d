// Bilinear resampling positions shared by the mask assemblers (masks.cpp, yolact.cpp).
#pragma once

#include <algorithm>
#include <cstdint>

namespace edgeseg {
namespace detail {

// Source position of output index `o` for a bilinear resize with half-pixel centres
// (align_corners=False) and the given input/output scale, as PyTorch computes it (float
// arithmetic, clamped at 0 and at the last input sample): taps *i0 and *i1, weight *w1 on *i1.
inline void linear_source(float scale, int64_t o, int64_t in_len, int64_t* i0, int64_t* i1,
                          float* w1) {
  float src = scale * (static_cast<float>(o) + 0.5f) - 0.5f;
  if (src < 0.f) src = 0.f;
  *i0 = std::min<int64_t>(static_cast<int64_t>(src), in_len - 1);
  *i1 = *i0 + (*i0 < in_len - 1 ? 1 : 0);
  *w1 = std::clamp(src - static_cast<float>(*i0), 0.f, 1.f);
}

}  // namespace detail
}  // namespace edgeseg
