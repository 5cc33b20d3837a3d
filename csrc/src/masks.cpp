// Box-cropped instance masks at source resolution.
//
// The reference (Ultralytics, retina masks) upsamples the full prototype-resolution logits of
// every detection: first by a factor f in {1, 2, 4} so that the letterbox padding falls on whole
// pixels, then, after cutting the padding away, bilinearly to the source image size; it then
// zeroes everything outside the box. Both resizes are linear and separable, so here each output
// row and column is one small weighted sum of prototype rows/columns (an "axis plan" built once
// per image), and only pixels inside each box are ever computed: logits for the prototype
// window under the box, a horizontal pass, a vertical pass, and the sign test.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>

#include "checks.hpp"
#include "clones.hpp"
#include "edgeseg/core.hpp"
#include "raster.hpp"
#include "resample.hpp"

namespace edgeseg {
namespace {

using detail::AxisPlan;
using detail::kTaps;
using detail::make_axis_plan;

}  // namespace

namespace detail {

AxisPlan make_axis_plan(int64_t proto_len, int64_t f, int64_t lo, int64_t hi, int64_t out_len,
                        int64_t o_begin, int64_t o_end) {
  AxisPlan plan;
  plan.origin = o_begin;
  plan.start.resize(static_cast<size_t>(o_end - o_begin));
  plan.weight.assign(static_cast<size_t>((o_end - o_begin) * kTaps), 0.f);
  const float scale2 = static_cast<float>(hi - lo) / static_cast<float>(out_len);
  const float scale1 = 1.f / static_cast<float>(f);
  for (int64_t o = o_begin; o < o_end; ++o) {
    int64_t j[2];
    float wj1;
    linear_source(scale2, o, hi - lo, &j[0], &j[1], &wj1);
    const float wj[2] = {1.f - wj1, wj1};
    int64_t idx[4];
    float w[4];
    int n = 0;
    for (int t = 0; t < 2; ++t) {
      if (f == 1) {
        idx[n] = lo + j[t];
        w[n++] = wj[t];
      } else {
        int64_t p0, p1;
        float q1;
        linear_source(scale1, lo + j[t], proto_len, &p0, &p1, &q1);
        idx[n] = p0;
        w[n++] = wj[t] * (1.f - q1);
        idx[n] = p1;
        w[n++] = wj[t] * q1;
      }
    }
    const int64_t first = *std::min_element(idx, idx + n);
    plan.start[static_cast<size_t>(o - o_begin)] = static_cast<int32_t>(first);
    for (int t = 0; t < n; ++t) {
      if (idx[t] - first >= kTaps) throw std::logic_error("mask resampling needs too many taps");
      plan.weight[static_cast<size_t>((o - o_begin) * kTaps + (idx[t] - first))] += w[t];
    }
  }
  return plan;
}

}  // namespace detail

namespace {

// The reference's retina-mask geometry, for prototypes `stride` times smaller than the input.
struct MaskGeometry {
  int64_t f;                         // first upsampling factor
  int64_t top, bottom, left, right;  // content window in the f-times upsampled prototypes
};

MaskGeometry mask_geometry(int64_t ph, int64_t pw, int64_t stride, int64_t h, int64_t w) {
  // Both steps are the same centred letterbox the input went through (make_letterbox), once at
  // input size to find the padding and once at the f-times upsampled prototype size, as the
  // reference's scale_masks letterboxes again at that size.
  MaskGeometry g;
  const Letterbox in = make_letterbox(h, w, stride * ph, stride * pw);
  const int64_t pad = (stride * ph - in.new_h) | (stride * pw - in.new_w);
  g.f = stride / std::gcd(stride, pad | (pad / 2));
  const Letterbox up = make_letterbox(h, w, g.f * ph, g.f * pw);
  g.top = up.pad_top;
  g.left = up.pad_left;
  g.bottom = std::min(up.pad_top + up.new_h, g.f * ph);
  g.right = std::min(up.pad_left + up.new_w, g.f * pw);
  if (g.bottom <= g.top || g.right <= g.left)
    throw InvalidArgument("letterbox leaves no image content in the prototypes");
  return g;
}

// Prototype window [lo, hi) feeding output indices [o0, o1).
void proto_window(const AxisPlan& plan, int64_t o0, int64_t o1, int64_t* lo, int64_t* hi) {
  *lo = plan.start_at(o0);
  *hi = *lo;
  for (int64_t o = o0; o < o1; ++o) *hi = std::max(*hi, int64_t{plan.start_at(o)} + kTaps);
}

struct Scratch {
  std::vector<float> logits, rows, acc, lo, hi;
  std::vector<uint8_t> on;
};

// Every logit coeff . prototypes is summed in one fixed order, whatever the prototypes' layout,
// so NCHW and NHWC prototypes give bit-identical masks (float addition is not associative: a
// plain running sum in one layout and a vectorized one in the other moved logits near 0 across
// the threshold). The order: kLanes partial sums, lane k over channels c = k (mod kLanes) of the
// first kLanes * floor(C / kLanes) channels, combined by `combine`, then the remaining channels
// one by one. Eight lanes let both layouts vectorize without the compiler reassociating anything.
constexpr int kLanes = 8;

inline float combine(float p0, float p1, float p2, float p3, float p4, float p5, float p6,
                     float p7) {
  return ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7));
}

// Channels last: one pixel's channels are contiguous, so each pixel keeps its lanes in registers.
template <typename T>
inline __attribute__((always_inline)) void dot_row_impl(const T* row, int64_t stride_x,
                                                        int64_t width, const float* coeff,
                                                        int64_t channels, float* out) {
  for (int64_t x = 0; x < width; ++x) {
    const T* px = row + x * stride_x;
    float part[kLanes] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int64_t c = 0;
    for (; c + kLanes <= channels; c += kLanes) {
      for (int k = 0; k < kLanes; ++k) part[k] += coeff[c + k] * static_cast<float>(px[c + k]);
    }
    float acc = combine(part[0], part[1], part[2], part[3], part[4], part[5], part[6], part[7]);
    for (; c < channels; ++c) acc += coeff[c] * static_cast<float>(px[c]);
    out[x] = acc;
  }
}

// Channels first: a pixel's channels are far apart, so the lanes of a whole row are kept in
// `parts` (kLanes rows of `width`, in L1) and each prototype row is read once, contiguously.
// Same per-logit operations, in the same order, as dot_row_impl.
template <typename T>
inline __attribute__((always_inline)) void planar_row_impl(const T* row, int64_t stride_c,
                                                           int64_t stride_x, int64_t width,
                                                           const float* coeff, int64_t channels,
                                                           float* __restrict parts,
                                                           float* __restrict out) {
  const int64_t full = channels - channels % kLanes;
  for (int64_t i = 0; i < kLanes * width; ++i) parts[i] = 0.f;
  for (int64_t c = 0; c < full; ++c) {
    const float k = coeff[c];
    const T* src = row + c * stride_c;
    float* __restrict dst = parts + (c % kLanes) * width;
    if (stride_x == 1) {
      for (int64_t x = 0; x < width; ++x) dst[x] += k * static_cast<float>(src[x]);
    } else {
      for (int64_t x = 0; x < width; ++x) dst[x] += k * static_cast<float>(src[x * stride_x]);
    }
  }
  const float* p = parts;
  for (int64_t x = 0; x < width; ++x) {
    out[x] = combine(p[x], p[width + x], p[2 * width + x], p[3 * width + x], p[4 * width + x],
                     p[5 * width + x], p[6 * width + x], p[7 * width + x]);
  }
  for (int64_t c = full; c < channels; ++c) {
    const float k = coeff[c];
    const T* src = row + c * stride_c;
    for (int64_t x = 0; x < width; ++x) out[x] += k * static_cast<float>(src[x * stride_x]);
  }
}

EDGESEG_CLONES void dot_row(const float* r, int64_t sx, int64_t w, const float* k, int64_t c,
                            float* o) {
  dot_row_impl(r, sx, w, k, c, o);
}
EDGESEG_CLONES void dot_row(const int8_t* r, int64_t sx, int64_t w, const float* k, int64_t c,
                            float* o) {
  dot_row_impl(r, sx, w, k, c, o);
}
EDGESEG_CLONES void dot_row(const uint8_t* r, int64_t sx, int64_t w, const float* k, int64_t c,
                            float* o) {
  dot_row_impl(r, sx, w, k, c, o);
}
EDGESEG_CLONES void planar_row(const float* r, int64_t sc, int64_t sx, int64_t w, const float* k,
                               int64_t c, float* parts, float* o) {
  planar_row_impl(r, sc, sx, w, k, c, parts, o);
}
EDGESEG_CLONES void planar_row(const int8_t* r, int64_t sc, int64_t sx, int64_t w, const float* k,
                               int64_t c, float* parts, float* o) {
  planar_row_impl(r, sc, sx, w, k, c, parts, o);
}
EDGESEG_CLONES void planar_row(const uint8_t* r, int64_t sc, int64_t sx, int64_t w, const float* k,
                               int64_t c, float* parts, float* o) {
  planar_row_impl(r, sc, sx, w, k, c, parts, o);
}

// Logits (coefficients . prototypes) over the prototype window [lx0, vx1) x [ly0, vy1), into a
// row-major buffer of row length nx. Quantized prototypes are converted on the fly and the affine
// (zero point, scale) is applied once per logit: sum_c k_c (q_c - z) s = s (sum_c k_c q_c - z sum_c
// k_c). `parts` holds kLanes * (vx1 - lx0) floats.
template <typename T>
void accumulate_logits(const ProtoView& p, const float* coeff, int64_t lx0, int64_t vx1,
                       int64_t ly0, int64_t vy1, int64_t nx, float* __restrict lg,
                       float* __restrict parts) {
  const T* base = static_cast<const T*>(p.data);
  const int64_t width = vx1 - lx0;
  for (int64_t y = ly0; y < vy1; ++y) {
    const T* row = base + y * p.stride_y + lx0 * p.stride_x;
    float* out = lg + (y - ly0) * nx;
    if (p.stride_c == 1 && p.channels > 1) {
      dot_row(row, p.stride_x, width, coeff, p.channels, out);
    } else {
      planar_row(row, p.stride_c, p.stride_x, width, coeff, p.channels, parts, out);
    }
  }
  if constexpr (!std::is_floating_point_v<T>) {
    float sum = 0.f;
    for (int64_t c = 0; c < p.channels; ++c) sum += coeff[c];
    const float offset = static_cast<float>(p.quant.zero_point) * sum, scale = p.quant.scale;
    for (int64_t y = ly0; y < vy1; ++y) {
      float* row = lg + (y - ly0) * nx;
      for (int64_t x = 0; x < vx1 - lx0; ++x) row[x] = (row[x] - offset) * scale;
    }
  }
}

constexpr int64_t kChunk = 64;  // output columns decided together, one uint64 of mask bits

// Packs 8 bytes of 0/1 into one byte, first byte in the lowest bit.
inline uint8_t pack8(const uint8_t* v) {
  uint64_t u;
  std::memcpy(&u, v, 8);
  return static_cast<uint8_t>((u * 0x0102040810204080ULL) >> 56);
}

// The horizontal pass of one logit row that starts at prototype column `origin`: output column x
// from the taps starting at start[x]. (Indices are made relative before adding them to the
// pointer: a pointer to before the row, even one never read through, is undefined behaviour.)
inline __attribute__((always_inline)) void resample_row(const float* logits, int64_t origin,
                                                        const int32_t* start, const float* weight,
                                                        int64_t width, float* __restrict out) {
  for (int64_t x = 0; x < width; ++x) {
    const float* w = weight + x * kTaps;
    const float* v = logits + (start[x] - origin);
    out[x] = w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3];
  }
}

// The vertical pass over output columns [c0, c1) of one row: the weighted sum of the tap rows,
// the sign as 0/1 bytes into `on`, and probabilities when asked for.
inline __attribute__((always_inline)) void blend_row(const float* base, const float* w,
                                                     int64_t stride, int64_t c0, int64_t c1,
                                                     float* __restrict acc, uint8_t* __restrict on,
                                                     float* probs) {
  for (int64_t x = c0; x < c1; ++x) acc[x] = 0.f;
  for (int t = 0; t < kTaps; ++t) {
    if (w[t] == 0.f) continue;
    const float wt = w[t];
    const float* __restrict r = base + t * stride;
    for (int64_t x = c0; x < c1; ++x) acc[x] += wt * r[x];
  }
  for (int64_t x = c0; x < c1; ++x) on[x] = acc[x] > 0.f;
  if (probs != nullptr) {
    for (int64_t x = c0; x < c1; ++x) probs[x] = 1.f / (1.f + std::exp(-acc[x]));
  }
}

struct Window {
  int64_t lx0, ly0, nx, ny;               // logit window origin and size
  int64_t x0, y0, width, height, chunks;  // output crop
};

// Horizontal pass, per-chunk ranges, vertical pass, threshold and packing of one mask (see
// render_mask). Buffers are sized by the caller: this function only computes, so it can be cloned.
EDGESEG_CLONES int64_t rasterize(const float* lg, const Window& win, const AxisPlan& px,
                                 const AxisPlan& py, uint8_t* bits, float* probs,
                                 float* __restrict rows, float* __restrict lo_of,
                                 float* __restrict hi_of, float* __restrict acc,
                                 uint8_t* __restrict on) {
  const int64_t bw = win.width, chunks = win.chunks;
  // Horizontal pass: logit rows of the window -> output columns of the box, with the range of
  // each 64-column chunk.
  for (int64_t y = 0; y < win.ny; ++y) {
    float* r = rows + y * bw;
    resample_row(lg + y * win.nx, win.lx0, px.starts_from(win.x0), px.weights_at(win.x0), bw, r);
    for (int64_t c = 0; c < chunks; ++c) {
      const auto [mn, mx] = std::minmax_element(r + c * kChunk, r + std::min(bw, (c + 1) * kChunk));
      lo_of[y * chunks + c] = *mn;
      hi_of[y * chunks + c] = *mx;
    }
  }
  // Vertical pass and threshold at logit 0 (probability 0.5): no sigmoid unless soft masks.
  const int64_t row_bytes = (bw + 7) / 8;
  int64_t area = 0;
  for (int64_t y = 0; y < win.height; ++y) {
    const float* w = py.weights_at(win.y0 + y);
    const int64_t r0 = py.start_at(win.y0 + y) - win.ly0;
    float* prow = probs == nullptr ? nullptr : probs + y * bw;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t c0 = c * kChunk, c1 = std::min(bw, c0 + kChunk);
      float lo = std::numeric_limits<float>::infinity(), hi = -lo;
      for (int t = 0; t < kTaps; ++t) {
        if (w[t] == 0.f) continue;
        lo = std::min(lo, lo_of[(r0 + t) * chunks + c]);
        hi = std::max(hi, hi_of[(r0 + t) * chunks + c]);
      }
      if (prow == nullptr && (lo > 0.f || hi <= 0.f)) {
        std::fill(on + c0, on + c1, static_cast<uint8_t>(lo > 0.f));
      } else {
        blend_row(rows + r0 * bw, w, bw, c0, c1, acc, on, prow);
      }
    }
    uint8_t* out = bits + y * row_bytes;
    for (int64_t b = 0; b < row_bytes; ++b) out[b] = pack8(on + 8 * b);  // `on` is zero past bw
    int64_t row_area = 0;
    for (int64_t x = 0; x < bw; ++x) row_area += on[x];
    area += row_area;
  }
  return area;
}

// Writes the crop [x0, x1) x [y0, y1) of one instance's mask as bit-packed rows (row stride
// ceil(width / 8) bytes, first pixel in the lowest bit); returns its pixel count. `logits` fills
// the instance's logits over the prototype window that feeds the crop.
//
// Every output value is a convex combination (non-negative weights summing to one) of its tap
// rows' values, so where all of them are positive the pixels are set, and where none is the
// pixels are clear, with no arithmetic: per 64-column chunk of each tap row the minimum and
// maximum are kept, and only chunks straddling the mask's edge are blended. The result is the
// same as blending everywhere (a sum of same-signed terms cannot change sign in float).
int64_t render_mask(int64_t i, const detail::WindowLogits& logits, int64_t proto_h, int64_t proto_w,
                    const AxisPlan& px, const AxisPlan& py, int64_t x0, int64_t x1, int64_t y0,
                    int64_t y1, uint8_t* bits, float* probs, Scratch& s) {
  int64_t lx0, lx1, ly0, ly1;
  proto_window(px, x0, x1, &lx0, &lx1);
  proto_window(py, y0, y1, &ly0, &ly1);
  // Windows may run past the prototype edge by up to kTaps - 1 zero-weight taps: pad with zeros.
  const int64_t nx = lx1 - lx0, ny = ly1 - ly0;
  const int64_t vx1 = std::min(lx1, proto_w), vy1 = std::min(ly1, proto_h);
  s.logits.assign(static_cast<size_t>(nx * ny), 0.f);
  float* __restrict lg = s.logits.data();
  logits(i, lx0, vx1, ly0, vy1, nx, lg);
  for (int64_t k = 0; k < nx * ny; ++k) {
    if (!std::isfinite(lg[k]))
      throw InvalidArgument(
          "mask features and instance parameters give NaN or infinite logits; the model or its "
          "quantization is broken (run `edgeseg info MODEL` to inspect it)");
  }

  const int64_t bw = x1 - x0, bh = y1 - y0, chunks = (bw + kChunk - 1) / kChunk;
  s.rows.resize(static_cast<size_t>(ny * bw));
  s.lo.resize(static_cast<size_t>(ny * chunks));
  s.hi.resize(static_cast<size_t>(ny * chunks));
  s.acc.resize(static_cast<size_t>(bw));
  s.on.assign(static_cast<size_t>(chunks * kChunk), 0);
  const Window win{lx0, ly0, nx, ny, x0, y0, bw, bh, chunks};
  return rasterize(lg, win, px, py, bits, probs, s.rows.data(), s.lo.data(), s.hi.data(),
                   s.acc.data(), s.on.data());
}

// The pixels a box covers, as the reference's crop: columns c with x1 <= c < x2.
void box_pixels(const float* b, int64_t w, int64_t h, int64_t* x0, int64_t* x1, int64_t* y0,
                int64_t* y1) {
  auto edge = [](float v, int64_t limit) {  // clamp before converting: huge floats overflow int64
    return static_cast<int64_t>(std::clamp<double>(std::ceil(v), 0.0, static_cast<double>(limit)));
  };
  *x0 = edge(b[0], w);
  *x1 = std::max(*x0, edge(b[2], w));
  *y0 = edge(b[1], h);
  *y1 = std::max(*y0, edge(b[3], h));
}

}  // namespace

Masks assemble_masks(const ProtoView& protos, const float* coeffs, const float* boxes, int64_t n,
                     int64_t input_h, int64_t input_w, int64_t src_h, int64_t src_w,
                     const MaskOptions& opt) {
  const ProtoView& p = protos;
  if (p.data == nullptr || p.channels < 1 || p.height < 1 || p.width < 1)
    throw InvalidArgument("prototypes must be a non-empty (channels, height, width) array");
  // Axis plans hold prototype indices as int32; every other size below is then bounded.
  if (p.height > detail::kMaxSide || p.width > detail::kMaxSide)
    throw InvalidArgument("prototypes are too large (" + std::to_string(p.height) + "x" +
                          std::to_string(p.width) + ")");
  // No model has prototype maps near this (YOLO's are a quarter of the input: 160 at 640), and
  // larger ones make the float32 resampling positions lose whole pixels and the logit window huge.
  if (p.height > kMaxPrototypeSide || p.width > kMaxPrototypeSide)
    throw InvalidArgument("prototypes of " + std::to_string(p.height) + "x" +
                          std::to_string(p.width) + " are larger than any model's (at most " +
                          std::to_string(kMaxPrototypeSide) + " a side)");
  detail::check_extent("prototypes", {p.channels, p.height, p.width},
                       {p.stride_c, p.stride_y, p.stride_x});
  detail::check_quant(p.dtype, p.quant, "prototypes");
  // 4 * n and n * channels index the boxes and coefficients.
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / 4 / p.channels)
    throw InvalidArgument("number of detections must be >= 0 (and fit the coefficients)");
  if (n > 0 && (coeffs == nullptr || boxes == nullptr))
    throw InvalidArgument("coefficients or boxes are null");
  // Crops are reported as int32 rects.
  if (src_h < 1 || src_w < 1 || src_h > detail::kMaxSide || src_w > detail::kMaxSide)
    throw InvalidArgument("image size must be in [1, 2147483647], got " + std::to_string(src_h) +
                          "x" + std::to_string(src_w));
  if (input_h < 1 || input_w < 1 || input_h > detail::kMaxSide || input_w > detail::kMaxSide)
    throw InvalidArgument("model input size must be in [1, 2147483647], got " +
                          std::to_string(input_h) + "x" + std::to_string(input_w));
  if (input_h % p.height != 0 || input_w % p.width != 0 || input_h / p.height != input_w / p.width)
    throw InvalidArgument("prototypes of " + std::to_string(p.height) + "x" +
                          std::to_string(p.width) +
                          " are not an integer fraction of the model input " +
                          std::to_string(input_h) + "x" + std::to_string(input_w));

  const MaskGeometry g = mask_geometry(p.height, p.width, input_h / p.height, src_h, src_w);
  const detail::ResampleAxis ax{p.width, g.f, g.left, g.right, src_w};
  const detail::ResampleAxis ay{p.height, g.f, g.top, g.bottom, src_h};
  thread_local std::vector<float> parts;
  auto logits = [&](int64_t i, int64_t x0, int64_t x1, int64_t y0, int64_t y1, int64_t row,
                    float* out) {
    parts.resize(static_cast<size_t>(kLanes * row));
    const float* coeff = coeffs + i * p.channels;
    switch (p.dtype) {
      case DType::kInt8:
        accumulate_logits<int8_t>(p, coeff, x0, x1, y0, y1, row, out, parts.data());
        break;
      case DType::kUInt8:
        accumulate_logits<uint8_t>(p, coeff, x0, x1, y0, y1, row, out, parts.data());
        break;
      default:
        accumulate_logits<float>(p, coeff, x0, x1, y0, y1, row, out, parts.data());
    }
  };
  return detail::render_masks(ax, ay, p.height, p.width, boxes, n, src_h, src_w, opt, logits);
}

namespace detail {

Masks render_masks(const ResampleAxis& ax, const ResampleAxis& ay, int64_t proto_h, int64_t proto_w,
                   const float* boxes, int64_t n, int64_t src_h, int64_t src_w,
                   const MaskOptions& opt, const WindowLogits& logits) {
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / 4)
    throw InvalidArgument("number of detections must be >= 0");
  if (n > 0 && boxes == nullptr) throw InvalidArgument("boxes are null");
  for (int64_t i = 0; i < 4 * n; ++i) {
    if (!std::isfinite(boxes[i])) throw InvalidArgument("boxes contain NaN or infinity");
  }
  // Size the output first (before the axis plans): the packed sizes of the boxes.
  // One crop fits easily (sides < 2^31), but the sum over many boxes of a huge image can overflow:
  // checked, as a wrapped total would size the buffers too small for what is written into them.
  int64_t total = 0, total_px = 0;
  std::vector<int64_t> rect(static_cast<size_t>(4 * n));
  for (int64_t i = 0; i < n; ++i) {
    int64_t* r = rect.data() + 4 * i;
    box_pixels(boxes + 4 * i, src_w, src_h, &r[0], &r[1], &r[2], &r[3]);
    if (detail::add_overflows(total, (r[1] - r[0] + 7) / 8 * (r[3] - r[2]), &total) ||
        (opt.soft && detail::add_overflows(total_px, (r[1] - r[0]) * (r[3] - r[2]), &total_px)))
      throw InvalidArgument("the masks of these " + std::to_string(n) +
                            " boxes are too large to allocate");
  }

  // The plans cover the span of all non-empty boxes along each axis.
  int64_t span_x0 = src_w, span_x1 = 0, span_y0 = src_h, span_y1 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t* r = rect.data() + 4 * i;
    if (r[1] <= r[0] || r[3] <= r[2]) continue;
    span_x0 = std::min(span_x0, r[0]);
    span_x1 = std::max(span_x1, r[1]);
    span_y0 = std::min(span_y0, r[2]);
    span_y1 = std::max(span_y1, r[3]);
  }
  if (span_x1 <= span_x0 || span_y1 <= span_y0) span_x0 = span_x1 = span_y0 = span_y1 = 0;

  const AxisPlan plan_x =
      make_axis_plan(ax.proto_len, ax.factor, ax.lo, ax.hi, ax.out_len, span_x0, span_x1);
  const AxisPlan plan_y =
      make_axis_plan(ay.proto_len, ay.factor, ay.lo, ay.hi, ay.out_len, span_y0, span_y1);

  Masks m;
  m.offsets.push_back(0);
  m.prob_offsets.push_back(0);
  m.bits.resize(static_cast<size_t>(total));
  if (opt.soft) m.probs.resize(static_cast<size_t>(total_px));

  thread_local Scratch scratch;
  int64_t offset = 0, prob_offset = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t* r = rect.data() + 4 * i;
    const int64_t x0 = r[0], x1 = r[1], y0 = r[2], y1 = r[3];
    int64_t area = 0;
    if (x1 > x0 && y1 > y0) {
      area = render_mask(i, logits, proto_h, proto_w, plan_x, plan_y, x0, x1, y0, y1,
                         m.bits.data() + offset, opt.soft ? m.probs.data() + prob_offset : nullptr,
                         scratch);
    }
    if (area == 0 && opt.drop_empty) continue;
    m.keep.push_back(i);
    m.rects.insert(m.rects.end(), {static_cast<int32_t>(x0), static_cast<int32_t>(y0),
                                   static_cast<int32_t>(x1 - x0), static_cast<int32_t>(y1 - y0)});
    m.areas.push_back(area);
    offset += (x1 - x0 + 7) / 8 * (y1 - y0);
    prob_offset += (x1 - x0) * (y1 - y0);
    m.offsets.push_back(offset);
    m.prob_offsets.push_back(prob_offset);
  }
  m.bits.resize(static_cast<size_t>(offset));
  if (opt.soft) m.probs.resize(static_cast<size_t>(prob_offset));
  return m;
}

}  // namespace detail
}  // namespace edgeseg
