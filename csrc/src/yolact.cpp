// YOLACT decoding (see edgeseg/yolact.hpp), transcribed from dbolya/yolact:
// layers/box_utils.py (decode, jaccard, crop, sanitize_coordinates), layers/functions/detection.py
// (Detect.detect, fast_nms, cc_fast_nms) and layers/output_utils.py (postprocess).
//
// Candidates: a (prior, class) pair whose score is above conf. yolact's Detect first keeps the
// priors whose best class is above conf and then runs Fast NMS per class over all of them without
// a second threshold (the comment in fast_nms says real deployments should add it); here the
// second threshold is applied, as OpenVINO's yolact adapter does. A pair below conf can only be
// suppressed by (never suppress) higher pairs of its class, so thresholding first is the same.
#include "edgeseg/yolact.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>

#include "checks.hpp"
#include "resample.hpp"

namespace edgeseg {
namespace {

void check_view(const View2D& v, const char* what) {
  if (v.data == nullptr && v.rows * v.cols > 0)
    throw InvalidArgument(std::string(what) + " is null");
  if (v.rows < 0 || v.cols < 0) throw InvalidArgument(std::string(what) + " has a negative size");
  detail::check_extent(what, {v.rows, v.cols}, {v.stride_row, v.stride_col});
  detail::check_quant(v.dtype, v.quant, what);
}

// One row of 4 values, dequantized.
inline void row4(const View2D& v, int64_t r, float* out) {
  for (int c = 0; c < 4; ++c) out[c] = v.at(r, c);
}

// box_utils.decode (variances 0.1, 0.2) in float32, in the reference's order of operations.
inline void decode_box(const float* loc, const float* prior, float* box) {
  const float cx = prior[0] + loc[0] * 0.1f * prior[2];
  const float cy = prior[1] + loc[1] * 0.1f * prior[3];
  const float w = prior[2] * std::exp(loc[2] * 0.2f);
  const float h = prior[3] * std::exp(loc[3] * 0.2f);
  box[0] = cx - w / 2.f;
  box[1] = cy - h / 2.f;
  box[2] = w + box[0];
  box[3] = h + box[1];
}

// box_utils.jaccard in float32 (no +1 on areas). NaN for two empty boxes, as there.
inline float jaccard(const float* a, const float* b) {
  const float iw = std::max(std::min(a[2], b[2]) - std::max(a[0], b[0]), 0.f);
  const float ih = std::max(std::min(a[3], b[3]) - std::max(a[1], b[1]), 0.f);
  const float inter = iw * ih;
  const float area_a = (a[2] - a[0]) * (a[3] - a[1]);
  const float area_b = (b[2] - b[0]) * (b[3] - b[1]);
  return inter / (area_a + area_b - inter);
}

// Fast NMS over k boxes sorted by descending score: box j survives when its IoU with every
// higher box i < j is <= iou, whether or not box i itself survived (the upper-triangular IoU
// matrix, max per column). The zeroed lower triangle makes that maximum at least 0, and a NaN IoU
// makes it NaN, which fails the test: such a box is dropped, as in the reference.
void fast_nms_sorted(const float* boxes, int64_t k, float iou, std::vector<uint8_t>* keep) {
  keep->assign(static_cast<size_t>(k), 0);
  for (int64_t j = 0; j < k; ++j) {
    bool ok = true;
    for (int64_t i = 0; i < j && ok; ++i) {
      const float v = jaccard(boxes + 4 * i, boxes + 4 * j);
      ok = v <= iou;  // false for NaN
    }
    (*keep)[static_cast<size_t>(j)] = ok;
  }
}

struct Cand {
  float score;
  int64_t prior;
  int32_t cls;
};

// Descending score; ties by class, then prior (the reference's stable sort over class-major,
// prior-ordered candidates).
inline bool by_score(const Cand& a, const Cand& b) {
  if (a.score != b.score) return a.score > b.score;
  if (a.cls != b.cls) return a.cls < b.cls;
  return a.prior < b.prior;
}

}  // namespace

Detections decode_yolact(const View2D& boxes, const View2D* priors, const View2D& conf,
                         const View2D& coeffs, const YolactOptions& opt) {
  check_view(boxes, "boxes");
  check_view(conf, "conf");
  check_view(coeffs, "mask coefficients");
  const int64_t n = conf.rows;
  if (conf.cols < 2)
    throw InvalidArgument("conf must have a background column and at least one class, got " +
                          std::to_string(conf.cols) + " columns");
  if (conf.cols - 1 > detail::kMaxSide) throw InvalidArgument("conf has too many classes");
  if (boxes.rows != n || boxes.cols != 4)
    throw InvalidArgument("boxes must be (" + std::to_string(n) + ", 4) for " + std::to_string(n) +
                          " conf rows, got (" + std::to_string(boxes.rows) + ", " +
                          std::to_string(boxes.cols) + ")");
  if (coeffs.rows != n || coeffs.cols < 1)
    throw InvalidArgument("mask coefficients must be (" + std::to_string(n) + ", K >= 1), got (" +
                          std::to_string(coeffs.rows) + ", " + std::to_string(coeffs.cols) + ")");
  if (priors != nullptr) {
    check_view(*priors, "priors");
    if (priors->rows != n || priors->cols != 4)
      throw InvalidArgument("priors must be (" + std::to_string(n) + ", 4), got (" +
                            std::to_string(priors->rows) + ", " + std::to_string(priors->cols) +
                            ")");
  }
  if (!(opt.conf >= 0.f && opt.conf <= 1.f)) throw InvalidArgument("conf must be in [0, 1]");
  if (!(opt.iou >= 0.f && opt.iou <= 1.f)) throw InvalidArgument("iou must be in [0, 1]");
  if (opt.top_k < 1) throw InvalidArgument("top_k must be >= 1");
  if (opt.max_det < 0) throw InvalidArgument("max_det must be >= 0");
  const int64_t num_classes = conf.cols - 1;
  if (!opt.class_allowed.empty() && static_cast<int64_t>(opt.class_allowed.size()) != num_classes)
    throw InvalidArgument("class_allowed must have one flag per class (" +
                          std::to_string(num_classes) + "), got " +
                          std::to_string(opt.class_allowed.size()));
  auto allowed = [&](int64_t c) { return opt.class_allowed.empty() || opt.class_allowed[c] != 0; };

  // Candidates, class-major: per class (cross_class: one list of best classes).
  std::vector<std::vector<Cand>> lists(opt.cross_class ? 1 : static_cast<size_t>(num_classes));
  for (int64_t r = 0; r < n; ++r) {
    if (opt.cross_class) {
      // cc_fast_nms: the best class of each prior (first on ties, as torch.max / argmax).
      float best = -std::numeric_limits<float>::infinity();
      int64_t best_c = -1;
      for (int64_t c = 0; c < num_classes; ++c) {
        if (!allowed(c)) continue;
        const float v = conf.at(r, c + 1);
        if (v > best) best = v, best_c = c;
      }
      if (best_c >= 0 && best > opt.conf)
        lists[0].push_back({best, r, static_cast<int32_t>(best_c)});
      continue;
    }
    for (int64_t c = 0; c < num_classes; ++c) {
      const float v = conf.at(r, c + 1);
      if (v > opt.conf && allowed(c)) lists[static_cast<size_t>(c)].push_back({v, r, 0});
    }
  }
  if (!opt.cross_class) {
    for (size_t c = 0; c < lists.size(); ++c) {
      for (Cand& k : lists[c]) k.cls = static_cast<int32_t>(c);
    }
  }

  // Per list: sort, keep the top_k, decode their boxes, NMS.
  std::vector<Cand> kept;
  std::vector<float> cand_boxes;
  std::vector<uint8_t> keep;
  std::vector<Cand> all;  // greedy NMS: every candidate, NMS-ed together below
  for (auto& list : lists) {
    if (list.empty()) continue;
    std::sort(list.begin(), list.end(), by_score);
    if (opt.fast && static_cast<int64_t>(list.size()) > opt.top_k)
      list.resize(static_cast<size_t>(opt.top_k));
    if (!opt.fast) {
      all.insert(all.end(), list.begin(), list.end());
      continue;
    }
    const int64_t k = static_cast<int64_t>(list.size());
    cand_boxes.resize(static_cast<size_t>(4 * k));
    for (int64_t i = 0; i < k; ++i) {
      float b[4], p[4];
      row4(boxes, list[static_cast<size_t>(i)].prior, b);
      if (priors != nullptr) {
        row4(*priors, list[static_cast<size_t>(i)].prior, p);
        decode_box(b, p, cand_boxes.data() + 4 * i);
      } else {
        std::copy(b, b + 4, cand_boxes.data() + 4 * i);
      }
    }
    fast_nms_sorted(cand_boxes.data(), k, opt.iou, &keep);
    for (int64_t i = 0; i < k; ++i) {
      if (keep[static_cast<size_t>(i)]) kept.push_back(list[static_cast<size_t>(i)]);
    }
  }
  if (!opt.fast && !all.empty()) {
    // Greedy per-class NMS (yolact's traditional_nms, without its +1 pixel areas) by the core.
    std::sort(all.begin(), all.end(), by_score);
    const int64_t m = static_cast<int64_t>(all.size());
    std::vector<float> b(static_cast<size_t>(4 * m));
    std::vector<int32_t> cls(static_cast<size_t>(m));
    std::vector<int64_t> order(static_cast<size_t>(m));
    for (int64_t i = 0; i < m; ++i) {
      float raw[4], p[4];
      row4(boxes, all[static_cast<size_t>(i)].prior, raw);
      if (priors != nullptr) {
        row4(*priors, all[static_cast<size_t>(i)].prior, p);
        decode_box(raw, p, b.data() + 4 * i);
      } else {
        std::copy(raw, raw + 4, b.data() + 4 * i);
      }
      cls[static_cast<size_t>(i)] = all[static_cast<size_t>(i)].cls;
      order[static_cast<size_t>(i)] = i;
    }
    for (int64_t i : nms_ordered(b.data(), cls.data(), order.data(), m, opt.iou, m, false))
      kept.push_back(all[static_cast<size_t>(i)]);
  }

  // All classes together: the max_det highest scores.
  std::stable_sort(kept.begin(), kept.end(), by_score);
  if (static_cast<int64_t>(kept.size()) > opt.max_det)
    kept.resize(static_cast<size_t>(opt.max_det));

  Detections d;
  const int64_t nk = static_cast<int64_t>(kept.size()), nm = coeffs.cols;
  d.num_coeffs = nm;
  d.boxes.resize(static_cast<size_t>(4 * nk));
  d.scores.resize(static_cast<size_t>(nk));
  d.classes.resize(static_cast<size_t>(nk));
  d.coeffs.resize(static_cast<size_t>(nk * nm));
  for (int64_t i = 0; i < nk; ++i) {
    const Cand& c = kept[static_cast<size_t>(i)];
    float raw[4], p[4];
    row4(boxes, c.prior, raw);
    float* box = d.boxes.data() + 4 * i;
    if (priors != nullptr) {
      row4(*priors, c.prior, p);
      decode_box(raw, p, box);
    } else {
      std::copy(raw, raw + 4, box);
    }
    d.scores[static_cast<size_t>(i)] = c.score;
    d.classes[static_cast<size_t>(i)] = c.cls;
    for (int64_t k = 0; k < nm; ++k)
      d.coeffs[static_cast<size_t>(i * nm + k)] = coeffs.at(c.prior, k);
  }
  return d;
}

namespace {

// The prototype window [c0, c1) that box_utils.crop keeps along one axis of `len` prototype
// pixels for box edges a, b (fractions): pixels c with lo <= c < hi, lo = max(min(a, b) * len - 1,
// 0) and hi = min(max(a, b) * len + 1, len), computed in float32 as sanitize_coordinates does.
void crop_span(float a, float b, int64_t len, int64_t* c0, int64_t* c1) {
  const float fl = static_cast<float>(len);
  float lo = std::min(a * fl, b * fl), hi = std::max(a * fl, b * fl);
  lo = std::max(lo - 1.f, 0.f);
  hi = std::min(hi + 1.f, fl);
  *c0 = static_cast<int64_t>(std::clamp<double>(std::ceil(lo), 0.0, static_cast<double>(len)));
  *c1 = static_cast<int64_t>(std::clamp<double>(std::ceil(hi), 0.0, static_cast<double>(len)));
  if (*c1 < *c0) *c1 = *c0;
}

// Output indices [o0, o1) of an axis resized from `in_len` to `out_len` whose bilinear taps touch
// the window [c0, c1): the taps only move forward with the output index, so both ends are found
// from an estimate by a few steps.
void touched_span(int64_t c0, int64_t c1, int64_t in_len, int64_t out_len, int64_t* o0,
                  int64_t* o1) {
  *o0 = *o1 = 0;
  if (c1 <= c0) return;
  const float scale = static_cast<float>(in_len) / static_cast<float>(out_len);
  int64_t i0, i1;
  float w1;
  auto taps = [&](int64_t o) { detail::linear_source(scale, o, in_len, &i0, &i1, &w1); };
  const double inv = static_cast<double>(out_len) / static_cast<double>(in_len);
  int64_t e =
      std::clamp<int64_t>(static_cast<int64_t>(std::floor((c0 - 1.0) * inv)) - 2, 0, out_len);
  while (e < out_len && (taps(e), i1 < c0)) ++e;
  while (e > 0 && (taps(e - 1), i1 >= c0)) --e;
  *o0 = e;
  e = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((c1 + 1.0) * inv)) + 2, 0, out_len);
  while (e > 0 && (taps(e - 1), i0 >= c1)) --e;
  while (e < out_len && (taps(e), i0 < c1)) ++e;
  *o1 = std::max(e, *o0);
}

struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<float> w0, w1;
  void make(int64_t o0, int64_t o1, int64_t in_len, int64_t out_len) {
    const float scale = static_cast<float>(in_len) / static_cast<float>(out_len);
    const size_t m = static_cast<size_t>(o1 - o0);
    i0.resize(m), i1.resize(m), w0.resize(m), w1.resize(m);
    for (int64_t o = o0; o < o1; ++o) {
      const size_t k = static_cast<size_t>(o - o0);
      detail::linear_source(scale, o, in_len, &i0[k], &i1[k], &w1[k]);
      w0[k] = 1.f - w1[k];
    }
  }
};

struct Scratch {
  std::vector<float> probs, rows;
  std::vector<uint8_t> on;
  Taps tx, ty;
};

template <typename T>
void window_probs(const ProtoView& p, const float* coeff, int64_t x0, int64_t x1, int64_t y0,
                  int64_t y1, float* out) {
  const T* base = static_cast<const T*>(p.data);
  const int64_t nx = x1 - x0;
  float offset = 0.f, scale = 1.f;
  if constexpr (!std::is_floating_point_v<T>) {
    // sum_c k_c (q_c - z) s = s (sum_c k_c q_c - z sum_c k_c)
    float sum = 0.f;
    for (int64_t c = 0; c < p.channels; ++c) sum += coeff[c];
    offset = static_cast<float>(p.quant.zero_point) * sum;
    scale = p.quant.scale;
  }
  for (int64_t y = y0; y < y1; ++y) {
    for (int64_t x = x0; x < x1; ++x) {
      const T* px = base + y * p.stride_y + x * p.stride_x;
      float acc = 0.f;
      for (int64_t c = 0; c < p.channels; ++c)
        acc += coeff[c] * static_cast<float>(px[c * p.stride_c]);
      if constexpr (!std::is_floating_point_v<T>) acc = (acc - offset) * scale;
      if (!std::isfinite(acc))
        throw InvalidArgument(
            "mask prototypes or coefficients give NaN or infinite logits; the model or its "
            "quantization is broken (run `edgeseg info MODEL` to inspect it)");
      out[(y - y0) * nx + (x - x0)] = 1.f / (1.f + std::exp(-acc));
    }
  }
}

struct Rect {
  int64_t cx0, cx1, cy0, cy1;  // cropped prototype window
  int64_t ox0, ox1, oy0, oy1;  // output pixels it reaches
};

// One instance: probabilities of the cropped window, the horizontal pass for each window row,
// the vertical pass, threshold and packing. Returns the pixel count.
int64_t render(const ProtoView& p, const float* coeff, const Rect& r, int64_t src_h, int64_t src_w,
               uint8_t* bits, float* probs_out, Scratch& s) {
  const int64_t nx = r.cx1 - r.cx0, ny = r.cy1 - r.cy0;
  const int64_t bw = r.ox1 - r.ox0, bh = r.oy1 - r.oy0;
  s.probs.resize(static_cast<size_t>(nx * ny));
  switch (p.dtype) {
    case DType::kInt8:
      window_probs<int8_t>(p, coeff, r.cx0, r.cx1, r.cy0, r.cy1, s.probs.data());
      break;
    case DType::kUInt8:
      window_probs<uint8_t>(p, coeff, r.cx0, r.cx1, r.cy0, r.cy1, s.probs.data());
      break;
    default:
      window_probs<float>(p, coeff, r.cx0, r.cx1, r.cy0, r.cy1, s.probs.data());
  }
  s.tx.make(r.ox0, r.ox1, p.width, src_w);
  s.ty.make(r.oy0, r.oy1, p.height, src_h);
  // Horizontal pass: each window row to the output columns; zero outside the crop.
  s.rows.resize(static_cast<size_t>(ny * bw));
  for (int64_t y = 0; y < ny; ++y) {
    const float* pr = s.probs.data() + y * nx;
    float* out = s.rows.data() + y * bw;
    for (int64_t x = 0; x < bw; ++x) {
      const size_t k = static_cast<size_t>(x);
      const int64_t a = s.tx.i0[k] - r.cx0, b = s.tx.i1[k] - r.cx0;
      const float va = (a >= 0 && a < nx) ? pr[a] : 0.f;
      const float vb = (b >= 0 && b < nx) ? pr[b] : 0.f;
      out[x] = s.tx.w0[k] * va + s.tx.w1[k] * vb;
    }
  }
  // Vertical pass and threshold at 0.5.
  const int64_t row_bytes = (bw + 7) / 8;
  s.on.assign(static_cast<size_t>(row_bytes * 8), 0);
  int64_t area = 0;
  for (int64_t y = 0; y < bh; ++y) {
    const size_t k = static_cast<size_t>(y);
    const int64_t a = s.ty.i0[k] - r.cy0, b = s.ty.i1[k] - r.cy0;
    const float* ra = (a >= 0 && a < ny) ? s.rows.data() + a * bw : nullptr;
    const float* rb = (b >= 0 && b < ny) ? s.rows.data() + b * bw : nullptr;
    const float wa = s.ty.w0[k], wb = s.ty.w1[k];
    float* prow = probs_out == nullptr ? nullptr : probs_out + y * bw;
    for (int64_t x = 0; x < bw; ++x) {
      const float v = wa * (ra ? ra[x] : 0.f) + wb * (rb ? rb[x] : 0.f);
      s.on[static_cast<size_t>(x)] = v > 0.5f;
      if (prow != nullptr) prow[x] = v;
    }
    uint8_t* out = bits + y * row_bytes;
    for (int64_t q = 0; q < row_bytes; ++q) {
      uint8_t byte = 0;
      for (int t = 0; t < 8; ++t)
        byte |= static_cast<uint8_t>(s.on[static_cast<size_t>(8 * q + t)] << t);
      out[q] = byte;
    }
    for (int64_t x = 0; x < bw; ++x) area += s.on[static_cast<size_t>(x)];
  }
  return area;
}

}  // namespace

Masks yolact_masks(const ProtoView& protos, const float* coeffs, const float* boxes, int64_t n,
                   int64_t src_h, int64_t src_w, const MaskOptions& opt) {
  const ProtoView& p = protos;
  if (p.data == nullptr || p.channels < 1 || p.height < 1 || p.width < 1)
    throw InvalidArgument("prototypes must be a non-empty (channels, height, width) array");
  if (p.height > kMaxPrototypeSide || p.width > kMaxPrototypeSide)
    throw InvalidArgument("prototypes of " + std::to_string(p.height) + "x" +
                          std::to_string(p.width) + " are larger than any model's (at most " +
                          std::to_string(kMaxPrototypeSide) + " a side)");
  detail::check_extent("prototypes", {p.channels, p.height, p.width},
                       {p.stride_c, p.stride_y, p.stride_x});
  detail::check_quant(p.dtype, p.quant, "prototypes");
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / 4 / p.channels)
    throw InvalidArgument("number of detections must be >= 0 (and fit the coefficients)");
  if (n > 0 && (coeffs == nullptr || boxes == nullptr))
    throw InvalidArgument("coefficients or boxes are null");
  if (src_h < 1 || src_w < 1 || src_h > detail::kMaxSide || src_w > detail::kMaxSide)
    throw InvalidArgument("image size must be in [1, 2147483647], got " + std::to_string(src_h) +
                          "x" + std::to_string(src_w));
  for (int64_t i = 0; i < 4 * n; ++i) {
    if (!std::isfinite(boxes[i])) throw InvalidArgument("boxes contain NaN or infinity");
  }

  // Size the output first: each crop's window, with overflow-checked totals.
  std::vector<Rect> rects(static_cast<size_t>(n));
  int64_t total = 0, total_px = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 4 * i;
    Rect& r = rects[static_cast<size_t>(i)];
    crop_span(b[0], b[2], p.width, &r.cx0, &r.cx1);
    crop_span(b[1], b[3], p.height, &r.cy0, &r.cy1);
    touched_span(r.cx0, r.cx1, p.width, src_w, &r.ox0, &r.ox1);
    touched_span(r.cy0, r.cy1, p.height, src_h, &r.oy0, &r.oy1);
    if (r.ox1 <= r.ox0 || r.oy1 <= r.oy0) r.ox0 = r.ox1 = r.oy0 = r.oy1 = 0;
    const int64_t bw = r.ox1 - r.ox0, bh = r.oy1 - r.oy0;
    if (detail::add_overflows(total, (bw + 7) / 8 * bh, &total) ||
        (opt.soft && detail::add_overflows(total_px, bw * bh, &total_px)))
      throw InvalidArgument("the masks of these " + std::to_string(n) +
                            " boxes are too large to allocate");
  }

  Masks m;
  m.offsets.push_back(0);
  m.prob_offsets.push_back(0);
  m.bits.resize(static_cast<size_t>(total));
  if (opt.soft) m.probs.resize(static_cast<size_t>(total_px));
  thread_local Scratch scratch;
  int64_t offset = 0, prob_offset = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Rect& r = rects[static_cast<size_t>(i)];
    const int64_t bw = r.ox1 - r.ox0, bh = r.oy1 - r.oy0;
    int64_t area = 0;
    if (bw > 0 && bh > 0) {
      area = render(p, coeffs + i * p.channels, r, src_h, src_w, m.bits.data() + offset,
                    opt.soft ? m.probs.data() + prob_offset : nullptr, scratch);
    }
    if (area == 0 && opt.drop_empty) continue;
    m.keep.push_back(i);
    m.rects.insert(m.rects.end(), {static_cast<int32_t>(r.ox0), static_cast<int32_t>(r.oy0),
                                   static_cast<int32_t>(bw), static_cast<int32_t>(bh)});
    m.areas.push_back(area);
    offset += (bw + 7) / 8 * bh;
    prob_offset += bw * bh;
    m.offsets.push_back(offset);
    m.prob_offsets.push_back(prob_offset);
  }
  m.bits.resize(static_cast<size_t>(offset));
  if (opt.soft) m.probs.resize(static_cast<size_t>(prob_offset));
  return m;
}

}  // namespace edgeseg
