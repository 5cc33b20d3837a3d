// SOLOv2 decoding (see edgeseg/solov2.hpp for the reference it follows).
//
// Where this differs in method (never in result) from the reference, for speed and memory:
// - candidates are found cell by cell with the sigmoid taken only near the threshold (the
//   reference takes it over the whole grid); point NMS compares a candidate with the three other
//   cells of its 2x2 pooling window, which is what max_pool2d(2, stride 1, padding 1)[:-1, :-1]
//   followed by "== score" decides;
// - the dynamic convolution runs over all candidates once, in blocks, keeping of each mask only
//   its bits (a bitset at mask-feature resolution), area, probability sum and extent: the
//   reference's N full float maps are never held. Sigmoids are taken only for pixels near the
//   mask threshold or inside the mask;
// - NMS is the core's (nms_variants.hpp) over the masks' bit-packed crops at mask-feature
//   resolution;
// - the kept instances' probabilities are recomputed under their own extent only, and the two
//   chained bilinear resizes (to the padded input, then from the image part to the source size)
//   are one separable plan per axis (resample.hpp), evaluated only over the output pixels whose
//   taps reach the mask: outside them every tap is at most mask_thr, so the interpolated value is.
#include "edgeseg/solov2.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>

#include "checks.hpp"
#include "clones.hpp"
#include "edgeseg/nms_variants.hpp"
#include "resample.hpp"

namespace edgeseg {
namespace {

using detail::AxisPlan;
using detail::kTaps;

constexpr int64_t kMaxLevels = 64;
constexpr int64_t kMaxMaskStride = 64;

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }

// The threshold below which a raw value cannot reach probability `thr` after the sigmoid, with a
// margin: values above it get their sigmoid compared with `thr` exactly.
float logit_floor(float thr) {
  if (thr <= 0.f) return -std::numeric_limits<float>::infinity();
  if (thr >= 1.f) return std::numeric_limits<float>::infinity();
  return std::log(thr / (1.f - thr)) - 1e-3f;
}

void check_view(const ProtoView& v, const std::string& what) {
  if (v.channels < 1 || v.height < 1 || v.width < 1)
    throw InvalidArgument(what + " must have at least one channel, row and column, got " +
                          std::to_string(v.channels) + "x" + std::to_string(v.height) + "x" +
                          std::to_string(v.width));
  if (v.data == nullptr) throw InvalidArgument(what + " is null");
  detail::check_extent(what.c_str(), {v.channels, v.height, v.width},
                       {v.stride_c, v.stride_y, v.stride_x});
  detail::check_quant(v.dtype, v.quant, what.c_str());
}

struct Candidate {
  int64_t g;      // flattened point index over all levels (level by level, row-major)
  int32_t cls;    // class
  int32_t level;  // pyramid level
  int64_t y, x;   // cell
  float score;    // category score after the sigmoid
};

// The candidates of one level and class above the score threshold that survive point NMS.
void level_candidates(const Solov2Level& lv, int32_t level, int64_t offset, int32_t cls,
                      const Solov2Options& opt, float floor_raw, std::vector<Candidate>* out) {
  const ProtoView& v = lv.cate;
  const int64_t base = cls * v.stride_c;
  auto raw = [&](int64_t y, int64_t x) {
    return load(v.data, v.dtype, base + y * v.stride_y + x * v.stride_x, v.quant);
  };
  auto score = [&](float r) { return opt.cate_logits ? sigmoid(r) : r; };
  for (int64_t y = 0; y < v.height; ++y) {
    for (int64_t x = 0; x < v.width; ++x) {
      const float r = raw(y, x);
      if (!(r > floor_raw)) continue;
      const float s = score(r);
      if (!(s > opt.score_thr)) continue;
      // Point NMS: the 2x2 window ending at (y, x) must not hold a larger score (NaN never wins).
      bool keep = true;
      if (y > 0 && x > 0) keep = keep && s >= score(raw(y - 1, x - 1));
      if (keep && y > 0) keep = s >= score(raw(y - 1, x));
      if (keep && x > 0) keep = s >= score(raw(y, x - 1));
      if (keep) out->push_back({offset + y * v.width + x, cls, level, y, x, s});
    }
  }
}

// acc (nb rows of `tile`) = kernels (nb x E) . features (E x hw) over pixels [p0, p0 + tile).
EDGESEG_CLONES void conv_tile(const float* feat, int64_t channels, int64_t hw, int64_t p0,
                              int64_t tile, const float* kern, int64_t nb, float* __restrict acc) {
  for (int64_t i = 0; i < nb * tile; ++i) acc[i] = 0.f;
  for (int64_t e = 0; e < channels; ++e) {
    const float* __restrict f = feat + e * hw + p0;
    for (int64_t j = 0; j < nb; ++j) {
      const float k = kern[j * channels + e];
      float* __restrict a = acc + j * tile;
      for (int64_t t = 0; t < tile; ++t) a[t] += k * f[t];
    }
  }
}

struct MaskStats {
  int64_t area = 0;
  double prob_sum = 0.0;
  int64_t y0 = 0, y1 = -1, x0 = 0, x1 = -1;  // inclusive extent at mask-feature resolution
};

// Pass 1: every candidate's binary mask (bitset), area, probability sum and extent.
void first_pass(const float* feat, int64_t channels, int64_t fh, int64_t fw,
                const std::vector<float>& kernels, int64_t n, float mask_thr, int64_t words,
                std::vector<uint64_t>* bits, std::vector<MaskStats>* stats) {
  constexpr int64_t kBlock = 8, kTile = 256;
  const int64_t hw = fh * fw;
  const float floor_raw = logit_floor(mask_thr);
  std::vector<float> acc(static_cast<size_t>(kBlock * kTile));
  bits->assign(static_cast<size_t>(n * words), 0);
  stats->assign(static_cast<size_t>(n), MaskStats{});
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t nb = std::min(kBlock, n - b);
    for (int64_t p0 = 0; p0 < hw; p0 += kTile) {
      const int64_t tile = std::min(kTile, hw - p0);
      conv_tile(feat, channels, hw, p0, tile, kernels.data() + b * channels, nb, acc.data());
      for (int64_t j = 0; j < nb; ++j) {
        const float* a = acc.data() + j * tile;
        MaskStats& st = (*stats)[static_cast<size_t>(b + j)];
        uint64_t* word = bits->data() + (b + j) * words;
        for (int64_t t = 0; t < tile; ++t) {
          if (!(a[t] > floor_raw)) {
            // A NaN logit (finite inputs whose products overflow to +inf and -inf) is a broken
            // model, as masks.cpp and yolact.cpp say: no mask or probability is made from it.
            if (std::isnan(a[t]))
              throw InvalidArgument(
                  "mask features and kernels give NaN logits; the model or its quantization is "
                  "broken (run `edgeseg info MODEL` to inspect it)");
            continue;
          }
          const float p = sigmoid(a[t]);
          if (!(p > mask_thr)) continue;
          const int64_t px = p0 + t;
          word[px >> 6] |= uint64_t{1} << (px & 63);
          const int64_t y = px / fw, x = px - y * fw;
          if (st.area == 0) {
            st.y0 = st.y1 = y;
            st.x0 = st.x1 = x;
          } else {
            st.y1 = y;  // pixels arrive in raster order: y only grows
            st.x0 = std::min(st.x0, x);
            st.x1 = std::max(st.x1, x);
          }
          ++st.area;
          st.prob_sum += p;
        }
      }
    }
  }
}

// First output index in [0, out_len) whose taps reach feature index >= f0, and first whose taps
// all lie beyond f1: the output span a feature extent [f0, f1] can influence.
struct TapGeometry {
  int64_t feat_len, f, lo, hi, out_len;
  // Smallest and largest feature index feeding output index o (weights may be zero).
  void taps(int64_t o, int64_t* first, int64_t* last) const {
    const float scale2 = static_cast<float>(hi - lo) / static_cast<float>(out_len);
    const float scale1 = 1.f / static_cast<float>(f);
    int64_t i0, i1;
    float w;
    detail::linear_source(scale2, o, hi - lo, &i0, &i1, &w);
    if (f == 1) {
      *first = lo + i0;
      *last = lo + i1;
      return;
    }
    int64_t p0, p1;
    detail::linear_source(scale1, lo + i0, feat_len, &p0, &p1, &w);
    *first = p0;
    detail::linear_source(scale1, lo + i1, feat_len, &p0, &p1, &w);
    *last = p1;
  }
  void span(int64_t f0, int64_t f1, int64_t* o0, int64_t* o1) const {
    int64_t a = 0, b = out_len;  // first o with last tap >= f0
    while (a < b) {
      const int64_t m = a + (b - a) / 2;
      int64_t s, e;
      taps(m, &s, &e);
      if (e >= f0)
        b = m;
      else
        a = m + 1;
    }
    *o0 = a;
    b = out_len;  // first o with first tap > f1
    while (a < b) {
      const int64_t m = a + (b - a) / 2;
      int64_t s, e;
      taps(m, &s, &e);
      if (s > f1)
        b = m;
      else
        a = m + 1;
    }
    *o1 = a;
  }
};

struct Rendered {
  int32_t rect[4];
  int64_t area;
};

// One kept instance at source resolution: probabilities under its extent, both resizes, the
// threshold, the tight crop, packed into `bits` (and its probabilities into `probs`). Returns
// false for a mask that comes out empty.
// Buffers reused from one instance to the next.
struct RenderScratch {
  std::vector<float> prob, rows, hi, val;
};

bool render(const float* feat, int64_t channels, int64_t fh, int64_t fw, const float* kern,
            const MaskStats& st, const TapGeometry& gx, const TapGeometry& gy, float mask_thr,
            bool soft, RenderScratch* scratch, std::vector<uint8_t>* bits,
            std::vector<float>* probs, Rendered* out) {
  int64_t ox0, ox1, oy0, oy1;
  gx.span(st.x0, st.x1, &ox0, &ox1);
  gy.span(st.y0, st.y1, &oy0, &oy1);
  if (ox0 >= ox1 || oy0 >= oy1) return false;
  const AxisPlan px = detail::make_axis_plan(fw, gx.f, gx.lo, gx.hi, gx.out_len, ox0, ox1);
  const AxisPlan py = detail::make_axis_plan(fh, gy.f, gy.lo, gy.hi, gy.out_len, oy0, oy1);
  // Feature window (zero-weight taps may run past the edge: those entries stay 0).
  const int64_t lx0 = px.start_at(ox0), lx1 = px.start_at(ox1 - 1) + kTaps;
  const int64_t ly0 = py.start_at(oy0), ly1 = py.start_at(oy1 - 1) + kTaps;
  const int64_t nx = lx1 - lx0, ny = ly1 - ly0;
  const int64_t vx1 = std::min(lx1, fw), vy1 = std::min(ly1, fh);
  std::vector<float>& prob = scratch->prob;
  prob.assign(static_cast<size_t>(nx * ny), 0.f);
  for (int64_t y = ly0; y < vy1; ++y) {
    float* __restrict row = prob.data() + (y - ly0) * nx;
    for (int64_t e = 0; e < channels; ++e) {
      const float k = kern[e];
      const float* __restrict f = feat + e * fh * fw + y * fw;
      for (int64_t x = lx0; x < vx1; ++x) row[x - lx0] += k * f[x];
    }
    for (int64_t x = lx0; x < vx1; ++x) row[x - lx0] = sigmoid(row[x - lx0]);
  }
  // Horizontal pass: each feature row -> output columns [ox0, ox1).
  const int64_t bw = ox1 - ox0, bh = oy1 - oy0;
  constexpr int64_t kChunk = 64;  // output columns whose emptiness is decided together
  const int64_t chunks = (bw + kChunk - 1) / kChunk;
  std::vector<float>& rows = scratch->rows;
  std::vector<float>& hi = scratch->hi;  // largest value of each chunk of each resampled row
  rows.resize(static_cast<size_t>(ny * bw));
  hi.resize(static_cast<size_t>(ny * chunks));
  for (int64_t y = 0; y < ny; ++y) {
    const float* src = prob.data() + y * nx;
    float* dst = rows.data() + y * bw;
    for (int64_t x = 0; x < bw; ++x) {
      const float* w = px.weights_at(ox0 + x);
      const float* v = src + (px.start_at(ox0 + x) - lx0);
      dst[x] = w[0] * v[0] + w[1] * v[1] + w[2] * v[2] + w[3] * v[3];
    }
    for (int64_t c = 0; c < chunks; ++c)
      hi[static_cast<size_t>(y * chunks + c)] =
          *std::max_element(dst + c * kChunk, dst + std::min(bw, (c + 1) * kChunk));
  }
  // Vertical pass and threshold. A chunk whose tap rows never exceed mask_thr stays below it (a
  // convex combination): it is left at 0 without being blended.
  std::vector<float>& val = scratch->val;
  val.resize(static_cast<size_t>(bh * bw));
  int64_t x0 = bw, x1 = -1, y0 = bh, y1 = -1;
  for (int64_t y = 0; y < bh; ++y) {
    const float* w = py.weights_at(oy0 + y);
    const int64_t r0 = py.start_at(oy0 + y) - ly0;
    const float* base = rows.data() + r0 * bw;
    float* dst = val.data() + y * bw;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t c0 = c * kChunk, c1 = std::min(bw, c0 + kChunk);
      float top = -std::numeric_limits<float>::infinity();
      for (int t = 0; t < kTaps; ++t) {
        if (w[t] != 0.f) top = std::max(top, hi[static_cast<size_t>((r0 + t) * chunks + c)]);
      }
      for (int64_t x = c0; x < c1; ++x) dst[x] = 0.f;
      if (!(top > mask_thr) && !soft) continue;
      for (int t = 0; t < kTaps; ++t) {
        if (w[t] == 0.f) continue;
        const float wt = w[t];
        const float* r = base + t * bw;
        for (int64_t x = c0; x < c1; ++x) dst[x] += wt * r[x];
      }
    }
    for (int64_t x = 0; x < bw; ++x) {
      if (dst[x] > mask_thr) {
        x0 = std::min(x0, x);
        x1 = std::max(x1, x);
        y0 = std::min(y0, y);
        y1 = y;
      }
    }
  }
  if (x1 < 0) return false;
  const int64_t cw = x1 - x0 + 1, ch = y1 - y0 + 1, row_bytes = (cw + 7) / 8;
  const size_t at = bits->size();
  bits->resize(at + static_cast<size_t>(row_bytes * ch), 0);
  uint8_t* dst = bits->data() + at;
  int64_t area = 0;
  for (int64_t y = 0; y < ch; ++y) {
    const float* v = val.data() + (y0 + y) * bw + x0;
    uint8_t* r = dst + y * row_bytes;
    for (int64_t x = 0; x < cw; ++x) {
      if (v[x] > mask_thr) {
        r[x >> 3] = static_cast<uint8_t>(r[x >> 3] | (1u << (x & 7)));
        ++area;
      }
    }
    if (soft) probs->insert(probs->end(), v, v + cw);
  }
  out->rect[0] = static_cast<int32_t>(ox0 + x0);
  out->rect[1] = static_cast<int32_t>(oy0 + y0);
  out->rect[2] = static_cast<int32_t>(cw);
  out->rect[3] = static_cast<int32_t>(ch);
  out->area = area;
  return true;
}

void check_options(const Solov2Options& o, int64_t num_classes) {
  auto unit = [](float v) { return v >= 0.f && v <= 1.f; };
  if (!unit(o.score_thr)) throw InvalidArgument("conf must be in [0, 1]");
  if (!unit(o.mask_thr)) throw InvalidArgument("mask_threshold must be in [0, 1]");
  if (!unit(o.iou)) throw InvalidArgument("iou must be in [0, 1]");
  if (!std::isfinite(o.filter_thr)) throw InvalidArgument("filter_thr must be finite");
  if (!(o.sigma > 0.f) || !std::isfinite(o.sigma))
    throw InvalidArgument("sigma must be a positive finite number");
  if (o.max_det < 0) throw InvalidArgument("max_det must be >= 0");
  if (o.mask_stride < 1 || o.mask_stride > kMaxMaskStride)
    throw InvalidArgument("mask_stride must be in [1, " + std::to_string(kMaxMaskStride) + "]");
  if (!o.class_allowed.empty() && static_cast<int64_t>(o.class_allowed.size()) != num_classes)
    throw InvalidArgument("class_allowed must have one flag per class (" +
                          std::to_string(num_classes) + "), got " +
                          std::to_string(o.class_allowed.size()));
}

}  // namespace

Solov2Instances decode_solov2(const std::vector<Solov2Level>& levels, const ProtoView& mask_feat,
                              const Letterbox& lb, const Solov2Options& opt) {
  // ---- validation --------------------------------------------------------------------------
  const int64_t num_levels = static_cast<int64_t>(levels.size());
  if (num_levels < 1 || num_levels > kMaxLevels)
    throw InvalidArgument("SOLOv2 needs 1 to " + std::to_string(kMaxLevels) + " levels, got " +
                          std::to_string(num_levels));
  check_view(mask_feat, "mask feature");
  // Before the size checks below, which divide by it (fuzz finding: mask_stride 0 was a SIGFPE).
  if (opt.mask_stride < 1 || opt.mask_stride > kMaxMaskStride)
    throw InvalidArgument("mask_stride must be in [1, " + std::to_string(kMaxMaskStride) + "]");
  const int64_t channels = mask_feat.channels, fh = mask_feat.height, fw = mask_feat.width;
  int64_t hw;
  if (detail::mul_overflows(fh, fw, &hw) || hw > (int64_t{1} << 31) ||
      detail::mul_overflows(hw, channels, &hw) || fh > detail::kMaxSide / opt.mask_stride ||
      fw > detail::kMaxSide / opt.mask_stride)
    throw InvalidArgument("mask feature is too large");
  hw = fh * fw;
  const int64_t num_classes = levels[0].cate.channels;
  int64_t points = 0;
  for (int64_t l = 0; l < num_levels; ++l) {
    const Solov2Level& lv = levels[static_cast<size_t>(l)];
    const std::string name = "level " + std::to_string(l);
    check_view(lv.cate, name + " category scores");
    check_view(lv.kernel, name + " kernels");
    if (lv.cate.channels != num_classes)
      throw InvalidArgument(name + " has " + std::to_string(lv.cate.channels) +
                            " classes, level 0 has " + std::to_string(num_classes));
    if (lv.kernel.channels != channels)
      throw InvalidArgument(name + " kernels have " + std::to_string(lv.kernel.channels) +
                            " channels, the mask feature has " + std::to_string(channels));
    if (lv.kernel.height != lv.cate.height || lv.kernel.width != lv.cate.width)
      throw InvalidArgument(name + " kernel grid differs from its category grid");
    if (!(lv.stride > 0.f) || !std::isfinite(lv.stride))
      throw InvalidArgument(name + " stride must be a positive finite number");
    int64_t cells;
    if (detail::mul_overflows(lv.cate.height, lv.cate.width, &cells) ||
        detail::add_overflows(points, cells, &points) || points > (int64_t{1} << 40))
      throw InvalidArgument("the category grids are too large");
  }
  if (num_classes > std::numeric_limits<int32_t>::max()) throw InvalidArgument("too many classes");
  check_options(opt, num_classes);
  if (lb.src_h < 1 || lb.src_w < 1 || lb.new_h < 1 || lb.new_w < 1 || lb.pad_top < 0 ||
      lb.pad_left < 0 || lb.src_h > detail::kMaxSide || lb.src_w > detail::kMaxSide)
    throw InvalidArgument("letterbox has a non-positive image or resized size");
  // The reference upsamples the mask feature by mask_stride, then keeps the image part.
  const int64_t up_h = fh * opt.mask_stride, up_w = fw * opt.mask_stride;
  const int64_t crop_h = std::min(lb.new_h, up_h - lb.pad_top);
  const int64_t crop_w = std::min(lb.new_w, up_w - lb.pad_left);
  if (crop_h < 1 || crop_w < 1)
    throw InvalidArgument("the mask feature (" + std::to_string(fh) + "x" + std::to_string(fw) +
                          " x stride " + std::to_string(opt.mask_stride) +
                          ") does not reach the image in the model input");

  Solov2Instances result;
  // ---- candidates: sigmoid, point NMS, score threshold -------------------------------------
  const float floor_raw = opt.cate_logits ? logit_floor(opt.score_thr) : opt.score_thr;
  std::vector<Candidate> cands;
  {
    int64_t offset = 0;
    for (int64_t l = 0; l < num_levels; ++l) {
      const Solov2Level& lv = levels[static_cast<size_t>(l)];
      for (int64_t c = 0; c < num_classes; ++c) {
        if (!opt.class_allowed.empty() && !opt.class_allowed[static_cast<size_t>(c)]) continue;
        level_candidates(lv, static_cast<int32_t>(l), offset, static_cast<int32_t>(c), opt,
                         floor_raw, &cands);
      }
      offset += lv.cate.height * lv.cate.width;
    }
  }
  // The reference's order: by point, then class (nonzero() of the [points, classes] mask).
  std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& b) {
    return a.g != b.g ? a.g < b.g : a.cls < b.cls;
  });
  const int64_t n = static_cast<int64_t>(cands.size());
  if (n == 0 || opt.max_det == 0) {
    // An empty MaskSet still has its K + 1 = 1 offsets (fuzz finding: they were left empty).
    result.masks.offsets.assign(1, 0);
    result.masks.prob_offsets.assign(1, 0);
    return result;
  }

  // ---- dynamic convolution, binarize, area filter, maskness --------------------------------
  std::vector<float> kernels(static_cast<size_t>(n * channels));
  for (int64_t i = 0; i < n; ++i) {
    const Candidate& c = cands[static_cast<size_t>(i)];
    const ProtoView& k = levels[static_cast<size_t>(c.level)].kernel;
    for (int64_t e = 0; e < channels; ++e)
      kernels[static_cast<size_t>(i * channels + e)] =
          load(k.data, k.dtype, e * k.stride_c + c.y * k.stride_y + c.x * k.stride_x, k.quant);
  }
  std::vector<float> feat_copy;
  const float* feat = static_cast<const float*>(mask_feat.data);
  if (mask_feat.dtype != DType::kFloat32 || mask_feat.stride_x != 1 || mask_feat.stride_y != fw ||
      mask_feat.stride_c != hw) {
    feat_copy.resize(static_cast<size_t>(channels * hw));
    for (int64_t e = 0; e < channels; ++e)
      for (int64_t y = 0; y < fh; ++y)
        for (int64_t x = 0; x < fw; ++x)
          feat_copy[static_cast<size_t>(e * hw + y * fw + x)] =
              load(mask_feat.data, mask_feat.dtype,
                   e * mask_feat.stride_c + y * mask_feat.stride_y + x * mask_feat.stride_x,
                   mask_feat.quant);
    feat = feat_copy.data();
  }
  const int64_t words = (hw + 63) / 64;
  std::vector<uint64_t> bits;
  std::vector<MaskStats> stats;
  first_pass(feat, channels, fh, fw, kernels, n, opt.mask_thr, words, &bits, &stats);
  std::vector<int64_t> alive;
  std::vector<float> score(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const MaskStats& st = stats[static_cast<size_t>(i)];
    const Candidate& c = cands[static_cast<size_t>(i)];
    // The reference compares the float area with the level's stride, strictly.
    if (!(static_cast<float>(st.area) > levels[static_cast<size_t>(c.level)].stride)) continue;
    const float maskness = static_cast<float>(st.prob_sum / static_cast<double>(st.area));
    score[static_cast<size_t>(i)] = c.score * maskness;
    alive.push_back(i);
  }
  // Highest first; ties keep the candidate order (a stable sort).
  std::stable_sort(alive.begin(), alive.end(), [&](int64_t a, int64_t b) {
    return score[static_cast<size_t>(a)] > score[static_cast<size_t>(b)];
  });
  if (opt.nms_pre > 0 && static_cast<int64_t>(alive.size()) > opt.nms_pre)
    alive.resize(static_cast<size_t>(opt.nms_pre));
  const int64_t m = static_cast<int64_t>(alive.size());

  // ---- NMS (the core's NMS variants, over the candidates' masks at mask-feature resolution) --
  // The survivors' bitsets become bit-packed crops of their extents (as MaskCrops), in `alive`
  // order, which is already by descending score (stable), so the variants' own stable sort keeps
  // it.
  std::vector<int32_t> rects(static_cast<size_t>(4 * m));
  std::vector<int64_t> offsets(static_cast<size_t>(m + 1), 0);
  std::vector<int32_t> classes(static_cast<size_t>(m));
  std::vector<float> pre_scores(static_cast<size_t>(m));
  for (int64_t p = 0; p < m; ++p) {
    const MaskStats& st = stats[static_cast<size_t>(alive[static_cast<size_t>(p)])];
    int32_t* r = rects.data() + 4 * p;
    r[0] = static_cast<int32_t>(st.x0);
    r[1] = static_cast<int32_t>(st.y0);
    r[2] = static_cast<int32_t>(st.x1 - st.x0 + 1);
    r[3] = static_cast<int32_t>(st.y1 - st.y0 + 1);
    offsets[static_cast<size_t>(p + 1)] =
        offsets[static_cast<size_t>(p)] + (int64_t{r[2]} + 7) / 8 * int64_t{r[3]};
    classes[static_cast<size_t>(p)] = cands[static_cast<size_t>(alive[static_cast<size_t>(p)])].cls;
    pre_scores[static_cast<size_t>(p)] = score[static_cast<size_t>(alive[static_cast<size_t>(p)])];
  }
  std::vector<uint8_t> crops(static_cast<size_t>(offsets[static_cast<size_t>(m)]), 0);
  for (int64_t p = 0; p < m; ++p) {
    const int64_t i = alive[static_cast<size_t>(p)];
    const MaskStats& st = stats[static_cast<size_t>(i)];
    const uint64_t* word = bits.data() + i * words;
    const int64_t w = st.x1 - st.x0 + 1, row_bytes = (w + 7) / 8;
    uint8_t* out = crops.data() + offsets[static_cast<size_t>(p)];
    for (int64_t y = st.y0; y <= st.y1; ++y) {
      uint8_t* row = out + (y - st.y0) * row_bytes;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t px = y * fw + st.x0 + x;
        if ((word[px >> 6] >> (px & 63)) & 1u)
          row[x >> 3] = static_cast<uint8_t>(row[x >> 3] | (1u << (x & 7)));
      }
    }
  }
  MaskCrops masks;
  masks.rects = rects.data();
  masks.offsets = offsets.data();
  masks.bits = crops.data();
  masks.bits_size = static_cast<int64_t>(crops.size());
  std::vector<int64_t> kept;       // positions in `alive`, by descending final score
  std::vector<float> final_score;  // by position in `alive`
  final_score.assign(pre_scores.begin(), pre_scores.end());
  if (opt.nms == Solov2Nms::kMatrix || opt.nms == Solov2Nms::kMask) {
    NmsResult r;
    if (opt.nms == Solov2Nms::kMatrix) {
      MatrixNmsOptions mo;
      mo.kernel = opt.gaussian ? MatrixKernel::kGaussian : MatrixKernel::kLinear;
      mo.sigma = opt.sigma;
      mo.max_det = opt.max_det;
      mo.filter_thr = opt.filter_thr;
      mo.agnostic = opt.agnostic;
      r = mask_matrix_nms(masks, pre_scores.data(), classes.data(), m, mo);
    } else {
      r = mask_nms(masks, pre_scores.data(), classes.data(), m, opt.iou, opt.max_det, opt.agnostic);
    }
    kept = r.keep;
    for (int64_t k = 0; k < r.size(); ++k)
      final_score[static_cast<size_t>(r.keep[static_cast<size_t>(k)])] =
          r.scores[static_cast<size_t>(k)];
  } else if (opt.nms == Solov2Nms::kFast) {
    // Fast NMS by mask IoU: dropped when any higher-scored candidate of its class overlaps > iou.
    const std::vector<float> iou = pairwise_mask_iou(masks, m);
    for (int64_t j = 0; j < m && static_cast<int64_t>(kept.size()) < opt.max_det; ++j) {
      bool drop = false;
      for (int64_t i = 0; i < j && !drop; ++i)
        drop =
            (opt.agnostic || classes[static_cast<size_t>(i)] == classes[static_cast<size_t>(j)]) &&
            iou[static_cast<size_t>(i * m + j)] > opt.iou;
      if (!drop) kept.push_back(j);
    }
  } else {  // greedy by the IoU of the masks' extents
    std::vector<float> boxes(static_cast<size_t>(4 * m));
    std::vector<int64_t> order(static_cast<size_t>(m));
    for (int64_t p = 0; p < m; ++p) {
      const int32_t* r = rects.data() + 4 * p;
      float* b = boxes.data() + 4 * p;
      b[0] = static_cast<float>(r[0]);
      b[1] = static_cast<float>(r[1]);
      b[2] = static_cast<float>(r[0] + r[2]);
      b[3] = static_cast<float>(r[1] + r[3]);
      order[static_cast<size_t>(p)] = p;
    }
    kept = nms_ordered(boxes.data(), classes.data(), order.data(), m, opt.iou, opt.max_det,
                       opt.agnostic);
  }

  // ---- masks of the kept instances at source resolution ------------------------------------
  const TapGeometry gx{fw, opt.mask_stride, lb.pad_left, lb.pad_left + crop_w, lb.src_w};
  const TapGeometry gy{fh, opt.mask_stride, lb.pad_top, lb.pad_top + crop_h, lb.src_h};
  Masks& mk = result.masks;
  RenderScratch scratch;
  mk.offsets.push_back(0);
  mk.prob_offsets.push_back(0);
  for (int64_t pos : kept) {
    const int64_t i = alive[static_cast<size_t>(pos)];
    Rendered r;
    if (!render(feat, channels, fh, fw, kernels.data() + i * channels,
                stats[static_cast<size_t>(i)], gx, gy, opt.mask_thr, opt.soft, &scratch, &mk.bits,
                &mk.probs, &r))
      continue;
    mk.keep.push_back(static_cast<int64_t>(result.scores.size()));
    mk.rects.insert(mk.rects.end(), r.rect, r.rect + 4);
    mk.areas.push_back(r.area);
    mk.offsets.push_back(static_cast<int64_t>(mk.bits.size()));
    mk.prob_offsets.push_back(static_cast<int64_t>(mk.probs.size()));
    const float x0 = static_cast<float>(r.rect[0]), y0 = static_cast<float>(r.rect[1]);
    result.boxes.insert(result.boxes.end(), {x0, y0, x0 + static_cast<float>(r.rect[2]),
                                             y0 + static_cast<float>(r.rect[3])});
    result.scores.push_back(final_score[static_cast<size_t>(pos)]);
    result.classes.push_back(cands[static_cast<size_t>(i)].cls);
  }
  return result;
}

}  // namespace edgeseg
