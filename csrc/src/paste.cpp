// Per-detection masks of end-to-end exports, straight into box-cropped bit-packed crops.
//
// RoI masks (Mask R-CNN, M x M probabilities per box) are sampled only over the pixels each
// reference pastes them into, so the cost follows the boxes, never the image. Both conventions
// are separable: a column plan and a row plan per box (tap index and two weights per output
// pixel), a horizontal pass over the mask rows the row plan touches, then a vertical blend and
// the threshold per output row. Full-frame masks are read by nearest neighbour only inside each
// (grown) box.
#include "edgeseg/paste.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "checks.hpp"
#include "resample.hpp"

namespace edgeseg {
namespace {

// One output pixel's two taps along an axis: value = w0 * m[i0] + w1 * m[i0 + 1]. Taps outside
// the mask carry weight 0 (zero padding) and a clamped index, so every read is in bounds.
struct Tap {
  int32_t i0;
  float w0, w1;
};

struct Scratch {
  std::vector<Tap> cols, rows;
  std::vector<float> hrows;   // horizontally resampled mask rows, one per mask row in use
  std::vector<float> lo, hi;  // range of each of those rows
  std::vector<float> acc;     // one output row of probabilities
  std::vector<uint8_t> on;    // one output row of 0/1
};

// Crop rect [x0, x1) x [y0, y1) in source pixels.
struct Rect {
  int64_t x0 = 0, x1 = 0, y0 = 0, y1 = 0;
  int64_t width() const { return x1 - x0; }
  int64_t height() const { return y1 - y0; }
  bool empty() const { return x1 <= x0 || y1 <= y0; }
};

// floor/ceil of a coordinate clamped to [0, limit] before converting (huge floats overflow int64).
int64_t clamped(double v, int64_t limit) {
  return static_cast<int64_t>(std::clamp(v, 0.0, static_cast<double>(limit)));
}

// The box grown to whole pixels plus one on each side: MMDetection's skip_empty window
// [floor(x1) - 1, ceil(x2) + 1), clipped to the image (the MMDeploy SDK uses the same window).
Rect grown_box(const float* b, int64_t w, int64_t h) {
  Rect r;
  r.x0 = clamped(std::floor(b[0]) - 1.0, w);
  r.x1 = std::max(r.x0, clamped(std::ceil(b[2]) + 1.0, w));
  r.y0 = clamped(std::floor(b[1]) - 1.0, h);
  r.y1 = std::max(r.y0, clamped(std::ceil(b[3]) + 1.0, h));
  return r;
}

bool box_is_empty(const float* b) { return !(b[2] > b[0] && b[3] > b[1]); }

// MMDetection: output pixel p (absolute) samples mask position (g + 1) * (M / 2) - 0.5 with
// g = (p + 0.5 - lo) / (hi - lo) * 2 - 1, computed in float as _do_paste_mask normalizes and
// PyTorch's CPU grid_sample unnormalizes it (align_corners=False); bilinear, zeros outside.
void mmdet_taps(float lo, float hi, int64_t p0, int64_t p1, int64_t m, std::vector<Tap>* taps) {
  taps->resize(static_cast<size_t>(p1 - p0));
  const float size = static_cast<float>(m);
  for (int64_t p = p0; p < p1; ++p) {
    const float g = (static_cast<float>(p) + 0.5f - lo) / (hi - lo) * 2.f - 1.f;
    const float s = (g + 1.f) * (size / 2.f) - 0.5f;
    const float f = std::floor(s);
    Tap t;
    float w0 = (f + 1.f) - s, w1 = s - f;
    // f can be anything for pixels far outside the box: only [-1, m - 1] has a tap inside.
    if (!(f >= -1.f && f <= size - 1.f)) {
      t = {0, 0.f, 0.f};
    } else {
      int64_t i0 = static_cast<int64_t>(f);
      if (i0 < 0) {  // left tap outside: only the right one (index 0) counts
        w0 = 0.f;
        i0 = 0;
        std::swap(w0, w1);       // the value at index 0 is now the first tap
      } else if (i0 == m - 1) {  // right tap outside
        w1 = 0.f;
      }
      t = {static_cast<int32_t>(i0), w0, w1};
    }
    (*taps)[static_cast<size_t>(p - p0)] = t;
  }
}

// torchvision: output index o of a (len)-pixel resize of the one-cell-padded mask (m + 2 cells),
// bilinear with align_corners=False; the padding cells are zeros, so a tap on them has weight 0.
void torchvision_taps(int64_t len, int64_t o0, int64_t o1, int64_t m, std::vector<Tap>* taps) {
  taps->resize(static_cast<size_t>(o1 - o0));
  const float scale = static_cast<float>(m + 2) / static_cast<float>(len);
  for (int64_t o = o0; o < o1; ++o) {
    int64_t i0, i1;
    float w1;
    detail::linear_source(scale, o, m + 2, &i0, &i1, &w1);
    // Padded index k holds mask index k - 1; 0 and m + 1 are the zero padding (no tap).
    const int64_t idx[2] = {i0 - 1, i1 - 1};
    const float wt[2] = {i1 == i0 ? 1.f : 1.f - w1, i1 == i0 ? 0.f : w1};
    int64_t j0 = -1;
    float wa = 0.f, wb = 0.f;
    for (int t = 0; t < 2; ++t) {
      if (idx[t] < 0 || idx[t] > m - 1 || wt[t] == 0.f) continue;
      if (j0 < 0) {
        j0 = idx[t];
        wa = wt[t];
      } else {
        wb = wt[t];  // idx[1] == j0 + 1: consecutive cells
      }
    }
    if (j0 < 0) j0 = 0;
    (*taps)[static_cast<size_t>(o - o0)] = {static_cast<int32_t>(j0), wa, wb};
  }
}

float at(const MaskStackView& v, int64_t k, int64_t y, int64_t x) {
  const int64_t i = k * v.stride_n + y * v.stride_y + x * v.stride_x;
  if (v.dtype == DType::kUInt8) return static_cast<const uint8_t*>(v.data)[i] != 0 ? 1.f : 0.f;
  return static_cast<const float*>(v.data)[i];
}

// Packs 8 bytes of 0/1 into one byte, first byte in the lowest bit.
inline uint8_t pack8(const uint8_t* v) {
  uint64_t u;
  std::memcpy(&u, v, 8);
  return static_cast<uint8_t>((u * 0x0102040810204080ULL) >> 56);
}

// Thresholds one row of probabilities into packed bits; returns the pixels set. `on` holds at
// least ceil(w / 8) * 8 bytes, zero past w.
inline int64_t pack_row(const float* p, int64_t w, float threshold, bool inclusive, uint8_t* on,
                        uint8_t* out) {
  if (inclusive) {
    for (int64_t x = 0; x < w; ++x) on[x] = p[x] >= threshold;
  } else {
    for (int64_t x = 0; x < w; ++x) on[x] = p[x] > threshold;
  }
  int64_t area = 0;
  for (int64_t x = 0; x < w; ++x) area += on[x];
  for (int64_t b = 0; b < (w + 7) / 8; ++b) out[b] = pack8(on + 8 * b);
  return area;
}

// Resamples RoI mask k through the plans into the crop: bits (row stride ceil(w / 8), zeroed by
// the caller) and, when asked, probabilities. Returns the pixel count. Each output value is
// w0 * a + w1 * b with non-negative weights, so a row whose bound from its two source rows' ranges
// is clear of the threshold is decided without computing it (the bound holds exactly in float:
// rounding is monotonic); a small margin keeps that true however the compiler fuses the products.
int64_t render_roi(const MaskStackView& v, int64_t k, const std::vector<Tap>& cols,
                   const std::vector<Tap>& rows, float threshold, bool inclusive, uint8_t* bits,
                   float* probs, Scratch* s) {
  const int64_t w = static_cast<int64_t>(cols.size()), h = static_cast<int64_t>(rows.size());
  int64_t r_lo = v.height, r_hi = 0;  // mask rows the row plan reads
  for (const Tap& t : rows) {
    if (t.w0 != 0.f || t.w1 != 0.f) {
      r_lo = std::min<int64_t>(r_lo, t.i0);
      r_hi = std::max<int64_t>(r_hi, std::min<int64_t>(t.i0 + 2, v.height));
    }
  }
  if (r_hi <= r_lo) r_lo = r_hi = 0;
  const int64_t nr = r_hi - r_lo;
  s->hrows.assign(static_cast<size_t>((nr + 1) * w), 0.f);  // + 1: a zero row
  s->lo.assign(static_cast<size_t>(nr + 1), 0.f);
  s->hi.assign(static_cast<size_t>(nr + 1), 0.f);
  for (int64_t r = r_lo; r < r_hi; ++r) {
    float* out = s->hrows.data() + (r - r_lo) * w;
    for (int64_t x = 0; x < w; ++x) {
      const Tap& t = cols[static_cast<size_t>(x)];
      const int64_t i1 = std::min<int64_t>(t.i0 + 1, v.width - 1);
      out[x] = t.w0 * at(v, k, r, t.i0) + t.w1 * at(v, k, r, i1);
    }
    const auto [mn, mx] = std::minmax_element(out, out + w);
    s->lo[static_cast<size_t>(r - r_lo)] = *mn;
    s->hi[static_cast<size_t>(r - r_lo)] = *mx;
  }
  const int64_t row_bytes = (w + 7) / 8;
  s->acc.resize(static_cast<size_t>(w));
  s->on.assign(static_cast<size_t>(row_bytes * 8), 0);
  constexpr float kMargin = 1e-5f;
  int64_t area = 0;
  for (int64_t y = 0; y < h; ++y) {
    const Tap& t = rows[static_cast<size_t>(y)];
    const bool none = t.w0 == 0.f && t.w1 == 0.f;
    const int64_t ia = none ? nr : t.i0 - r_lo, ib = (none || t.i0 + 1 >= r_hi) ? nr : ia + 1;
    const float* a = s->hrows.data() + ia * w;
    const float* b = s->hrows.data() + ib * w;
    uint8_t* out = bits + y * row_bytes;
    float* prow = probs == nullptr ? nullptr : probs + y * w;
    const float hi = t.w0 * s->hi[static_cast<size_t>(ia)] + t.w1 * s->hi[static_cast<size_t>(ib)];
    const float lo = t.w0 * s->lo[static_cast<size_t>(ia)] + t.w1 * s->lo[static_cast<size_t>(ib)];
    if (prow == nullptr && hi < threshold - kMargin) continue;  // all clear (bits are zero)
    if (prow == nullptr && lo > threshold + kMargin) {          // all set
      for (int64_t x = 0; x < w; ++x)
        out[x >> 3] = static_cast<uint8_t>(out[x >> 3] | (1u << (x & 7)));
      area += w;
      continue;
    }
    float* p = prow != nullptr ? prow : s->acc.data();
    for (int64_t x = 0; x < w; ++x) p[x] = t.w0 * a[x] + t.w1 * b[x];
    area += pack_row(p, w, threshold, inclusive, s->on.data(), out);
  }
  return area;
}

void check_stack(const MaskStackView& v, const int64_t* rows, int64_t n, const float* boxes) {
  if (v.dtype != DType::kFloat32 && v.dtype != DType::kUInt8)
    throw InvalidArgument("masks must be float32 probabilities or uint8 / bool binary masks");
  if (v.count < 0 || v.height < 1 || v.width < 1 || v.height > detail::kMaxSide ||
      v.width > detail::kMaxSide)
    throw InvalidArgument(
        "masks must be a (detections, height, width) array with height and "
        "width in [1, 2147483647], got " +
        std::to_string(v.count) + "x" + std::to_string(v.height) + "x" + std::to_string(v.width));
  if (v.count > 0 && v.data == nullptr) throw InvalidArgument("masks are null");
  detail::check_extent("masks", {v.count, v.height, v.width}, {v.stride_n, v.stride_y, v.stride_x});
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / 4)
    throw InvalidArgument("number of detections must be >= 0, got " + std::to_string(n));
  if (n > 0 && (rows == nullptr || boxes == nullptr))
    throw InvalidArgument("rows or boxes are null");
  for (int64_t i = 0; i < n; ++i) {
    if (rows[i] < 0 || rows[i] >= v.count)
      throw InvalidArgument("row " + std::to_string(rows[i]) + " is outside the " +
                            std::to_string(v.count) + " masks");
  }
  for (int64_t i = 0; i < 4 * n; ++i) {
    if (!std::isfinite(boxes[i])) throw InvalidArgument("boxes contain NaN or infinity");
  }
}

void check_image(int64_t h, int64_t w) {
  if (h < 1 || w < 1 || h > detail::kMaxSide || w > detail::kMaxSide)
    throw InvalidArgument("image size must be in [1, 2147483647], got " + std::to_string(h) + "x" +
                          std::to_string(w));
}

// Output buffers sized for the crops, with offsets; checked against overflow.
Masks allocate(const std::vector<Rect>& rects, bool soft) {
  Masks m;
  int64_t total = 0, total_px = 0;
  m.offsets.push_back(0);
  m.prob_offsets.push_back(0);
  for (const Rect& r : rects) {
    const int64_t w = r.empty() ? 0 : r.width(), h = r.empty() ? 0 : r.height();
    if (detail::add_overflows(total, (w + 7) / 8 * h, &total) ||
        (soft && detail::add_overflows(total_px, w * h, &total_px)))
      throw InvalidArgument("the masks of these boxes are too large to allocate");
    m.offsets.push_back(total);
    m.prob_offsets.push_back(soft ? total_px : 0);
    m.keep.push_back(static_cast<int64_t>(m.keep.size()));
    m.rects.insert(m.rects.end(), {static_cast<int32_t>(r.x0), static_cast<int32_t>(r.y0),
                                   static_cast<int32_t>(w), static_cast<int32_t>(h)});
  }
  m.bits.assign(static_cast<size_t>(total), 0);
  if (soft) m.probs.assign(static_cast<size_t>(total_px), 0.f);
  m.areas.assign(rects.size(), 0);
  return m;
}

// PyTorch's F.interpolate(mode="nearest") index: output o of out_len reads input
// min(floor(o * (in_len / out_len)), in_len - 1), the scale computed in float.
int64_t nearest_index(int64_t o, int64_t in_len, int64_t out_len) {
  if (in_len == out_len) return o;
  const float scale = static_cast<float>(in_len) / static_cast<float>(out_len);
  return std::min<int64_t>(static_cast<int64_t>(std::floor(static_cast<float>(o) * scale)),
                           in_len - 1);
}

}  // namespace

Masks paste_roi_masks(const MaskStackView& masks, const int64_t* rows, const float* boxes,
                      int64_t n, int64_t src_h, int64_t src_w, const PasteOptions& opt) {
  check_stack(masks, rows, n, boxes);
  check_image(src_h, src_w);
  if (!std::isfinite(opt.threshold)) throw InvalidArgument("mask threshold must be finite");
  const bool tv = opt.convention == PasteConvention::kTorchvision;
  if (tv && masks.height != masks.width)
    throw InvalidArgument("torchvision pastes square masks, got " + std::to_string(masks.height) +
                          "x" + std::to_string(masks.width));

  // Rects first (to size the output), with what each convention needs to sample.
  std::vector<Rect> rects(static_cast<size_t>(n));
  std::vector<int64_t> tv_box(static_cast<size_t>(tv ? 4 * n : 0));
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 4 * i;
    Rect& r = rects[static_cast<size_t>(i)];
    if (box_is_empty(b)) continue;  // zero width: grid_sample would divide by zero; nothing pasted
    if (!tv) {
      r = grown_box(b, src_w, src_h);
      continue;
    }
    // expand_boxes in float32 (the scale a float: the tensor's type), then .to(int64) truncates.
    const float scale = static_cast<float>(masks.width + 2) / static_cast<float>(masks.width);
    const float w_half = (b[2] - b[0]) * 0.5f * scale, h_half = (b[3] - b[1]) * 0.5f * scale;
    const float xc = (b[2] + b[0]) * 0.5f, yc = (b[3] + b[1]) * 0.5f;
    auto trunc = [](float v) {  // huge values cannot be pasted anywhere: clamp before converting
      return static_cast<int64_t>(
          std::clamp<double>(v, -4.0 * detail::kMaxSide, 4.0 * detail::kMaxSide));
    };
    int64_t* t = tv_box.data() + 4 * i;
    t[0] = trunc(xc - w_half);
    t[1] = trunc(yc - h_half);
    t[2] = trunc(xc + w_half);
    t[3] = trunc(yc + h_half);
    r.x0 = std::max<int64_t>(t[0], 0);
    r.x1 = std::min<int64_t>(t[2] + 1, src_w);
    r.y0 = std::max<int64_t>(t[1], 0);
    r.y1 = std::min<int64_t>(t[3] + 1, src_h);
    if (r.empty()) r = Rect{};
  }
  Masks m = allocate(rects, opt.soft);
  thread_local Scratch s;
  for (int64_t i = 0; i < n; ++i) {
    const Rect& r = rects[static_cast<size_t>(i)];
    if (r.empty()) continue;
    const float* b = boxes + 4 * i;
    if (!tv) {
      mmdet_taps(b[0], b[2], r.x0, r.x1, masks.width, &s.cols);
      mmdet_taps(b[1], b[3], r.y0, r.y1, masks.height, &s.rows);
    } else {
      const int64_t* t = tv_box.data() + 4 * i;
      const int64_t w = std::max<int64_t>(t[2] - t[0] + 1, 1),
                    h = std::max<int64_t>(t[3] - t[1] + 1, 1);
      torchvision_taps(w, r.x0 - t[0], r.x1 - t[0], masks.width, &s.cols);
      torchvision_taps(h, r.y0 - t[1], r.y1 - t[1], masks.height, &s.rows);
    }
    const size_t k = static_cast<size_t>(i);
    m.areas[k] =
        render_roi(masks, rows[i], s.cols, s.rows, opt.threshold, !tv, m.bits.data() + m.offsets[k],
                   opt.soft ? m.probs.data() + m.prob_offsets[k] : nullptr, &s);
  }
  return m;
}

Masks crop_frame_masks(const MaskStackView& masks, const int64_t* rows, const float* boxes,
                       int64_t n, const Letterbox& lb, const PasteOptions& opt) {
  check_stack(masks, rows, n, boxes);
  check_image(lb.src_h, lb.src_w);
  if (!std::isfinite(opt.threshold)) throw InvalidArgument("mask threshold must be finite");
  if (masks.height != lb.dst_h || masks.width != lb.dst_w)
    throw InvalidArgument("full-frame masks of " + std::to_string(masks.height) + "x" +
                          std::to_string(masks.width) + " do not match the model input " +
                          std::to_string(lb.dst_h) + "x" + std::to_string(lb.dst_w));
  if (lb.new_h < 1 || lb.new_w < 1 || lb.pad_top < 0 || lb.pad_left < 0 ||
      lb.pad_top + lb.new_h > lb.dst_h || lb.pad_left + lb.new_w > lb.dst_w)
    throw InvalidArgument("letterbox does not fit the model input");
  const int64_t W = lb.src_w, H = lb.src_h;
  // Input column of each source column, row of each source row (monotonic).
  std::vector<int64_t> col(static_cast<size_t>(W)), row(static_cast<size_t>(H));
  for (int64_t x = 0; x < W; ++x)
    col[static_cast<size_t>(x)] = lb.pad_left + nearest_index(x, lb.new_w, W);
  for (int64_t y = 0; y < H; ++y)
    row[static_cast<size_t>(y)] = lb.pad_top + nearest_index(y, lb.new_h, H);
  auto on = [&](float v) {
    if (masks.dtype == DType::kUInt8) return v != 0.f;
    return opt.inclusive ? v >= opt.threshold : v > opt.threshold;
  };

  std::vector<Rect> rects(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 4 * i;
    Rect& r = rects[static_cast<size_t>(i)];
    if (!box_is_empty(b)) {
      r = grown_box(b, W, H);
      continue;
    }
    // No box: the extent of the mask's pixels inside the image content, in input pixels, then
    // the source pixels that read them.
    int64_t c0 = masks.width, c1 = -1, q0 = masks.height, q1 = -1;
    for (int64_t y = lb.pad_top; y < lb.pad_top + lb.new_h; ++y) {
      for (int64_t x = lb.pad_left; x < lb.pad_left + lb.new_w; ++x) {
        if (on(at(masks, rows[i], y, x))) {
          c0 = std::min(c0, x);
          c1 = std::max(c1, x);
          q0 = std::min(q0, y);
          q1 = std::max(q1, y);
        }
      }
    }
    if (c1 < 0) continue;
    r.x0 = std::lower_bound(col.begin(), col.end(), c0) - col.begin();
    r.x1 = std::upper_bound(col.begin(), col.end(), c1) - col.begin();
    r.y0 = std::lower_bound(row.begin(), row.end(), q0) - row.begin();
    r.y1 = std::upper_bound(row.begin(), row.end(), q1) - row.begin();
    if (r.empty()) r = Rect{};  // the pixels fall between sampled source pixels
  }
  Masks m = allocate(rects, opt.soft);
  // Binary masks are read as 0 / 1 and set at >= 0.5.
  const bool binary = masks.dtype == DType::kUInt8;
  const float threshold = binary ? 0.5f : opt.threshold;
  const bool inclusive = binary || opt.inclusive;
  std::vector<float> acc;
  std::vector<uint8_t> flags;
  for (int64_t i = 0; i < n; ++i) {
    const Rect& r = rects[static_cast<size_t>(i)];
    if (r.empty()) continue;
    const size_t k = static_cast<size_t>(i);
    const int64_t w = r.width(), row_bytes = (w + 7) / 8;
    acc.resize(static_cast<size_t>(w));
    flags.assign(static_cast<size_t>(row_bytes * 8), 0);
    const int64_t* cols = col.data() + r.x0;
    int64_t area = 0;
    for (int64_t y = r.y0; y < r.y1; ++y) {
      float* p = opt.soft ? m.probs.data() + m.prob_offsets[k] + (y - r.y0) * w : acc.data();
      const int64_t base = rows[i] * masks.stride_n + row[static_cast<size_t>(y)] * masks.stride_y;
      if (binary) {
        const uint8_t* src = static_cast<const uint8_t*>(masks.data) + base;
        for (int64_t x = 0; x < w; ++x) p[x] = src[cols[x] * masks.stride_x] != 0 ? 1.f : 0.f;
      } else {
        const float* src = static_cast<const float*>(masks.data) + base;
        for (int64_t x = 0; x < w; ++x) p[x] = src[cols[x] * masks.stride_x];
      }
      area += pack_row(p, w, threshold, inclusive, flags.data(),
                       m.bits.data() + m.offsets[k] + (y - r.y0) * row_bytes);
    }
    m.areas[k] = area;
  }
  return m;
}

}  // namespace edgeseg
