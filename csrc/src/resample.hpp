// Chained bilinear resampling plans shared by the mask assemblers (masks.cpp: YOLO prototypes;
// solov2.cpp: SOLOv2 mask probabilities). Internal to the core.
#pragma once

#include <cstdint>
#include <vector>

namespace edgeseg {
namespace detail {

constexpr int kTaps = 4;  // two chained bilinear resizes touch at most 3 source samples

// Source position of output index `o` for a bilinear resize with half-pixel centres and the
// given input/output scale, as PyTorch computes it (float arithmetic, clamped at 0 and at the
// last input sample).
void linear_source(float scale, int64_t o, int64_t in_len, int64_t* i0, int64_t* i1, float* w1);

// Output indices [origin, origin + start.size()) of one axis: only the span the boxes cover, so
// memory follows the boxes, not the image (a 1 x 2^28 image needs no 5 GB of plans for a tiny box).
struct AxisPlan {
  int64_t origin = 0;
  std::vector<int32_t> start;  // first prototype index feeding each output index
  std::vector<float> weight;   // kTaps weights per output index, zero-padded
  int32_t start_at(int64_t o) const { return start[static_cast<size_t>(o - origin)]; }
  const int32_t* starts_from(int64_t o) const { return start.data() + (o - origin); }
  const float* weights_at(int64_t o) const { return weight.data() + (o - origin) * kTaps; }
};

// Output index o in [o_begin, o_end) of `out_len` <- crop [lo, hi) of the f-times upsampled axis
// <- prototype axis. Each index depends on o alone, so any sub-span gives the same entries.
AxisPlan make_axis_plan(int64_t proto_len, int64_t f, int64_t lo, int64_t hi, int64_t out_len,
                        int64_t o_begin, int64_t o_end);

}  // namespace detail
}  // namespace edgeseg
