// Point-prior heads with dynamic mask networks (RTMDet-Ins): decoding, NMS and box-only masks.
//
// Decoding follows MMDetection's RTMDetInsHead._predict_by_feat_single: per level, every
// (location, class) pair whose sigmoid score is above the threshold, the nms_pre best of them
// (filter_scores_and_topk), then distance boxes from the stride priors (distance2bbox, clamped
// to the input), degenerate boxes dropped (min_bbox_size 0), batched NMS and max_per_img.
// Masks follow _mask_predict_by_feat_single and _bbox_mask_post_process, evaluated only at the
// mask-feature locations under each survivor's box (render_masks does the resampling).
#include "edgeseg/dynconv.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "checks.hpp"
#include "clones.hpp"
#include "raster.hpp"

namespace edgeseg {
namespace {

constexpr int64_t kMaxNetChannels = 4096;
constexpr int64_t kMaxNetLayers = 64;

void check_net(const DynConvNet& net) {
  if (net.feat_channels < 1 || net.feat_channels > kMaxNetChannels || net.channels < 1 ||
      net.channels > kMaxNetChannels || net.num_layers < 1 || net.num_layers > kMaxNetLayers)
    throw InvalidArgument("dynamic mask network needs 1.." + std::to_string(kMaxNetChannels) +
                          " feature and hidden channels and 1.." + std::to_string(kMaxNetLayers) +
                          " layers, got " + std::to_string(net.feat_channels) + ", " +
                          std::to_string(net.channels) + " and " + std::to_string(net.num_layers));
}

// Input and output width of layer l.
int64_t layer_in(const DynConvNet& net, int64_t l) {
  return l == 0 ? net.feat_channels + 2 : net.channels;
}
int64_t layer_out(const DynConvNet& net, int64_t l) {
  return l == net.num_layers - 1 ? 1 : net.channels;
}

// One row of the network: `in` holds layer 0's inputs as planes of `nx` values; `a` and `b` hold
// net.channels planes each. Weights of layer l start at w[l], biases at bias[l]. Only computes
// (no throwing), so it can be cloned.
EDGESEG_CLONES void network_row(const float* __restrict in, int64_t nx, const float* const* w,
                                const float* const* bias, int64_t num_layers, int64_t cin0,
                                int64_t hidden, float* __restrict a, float* __restrict b,
                                float* __restrict out) {
  const float* src = in;
  int64_t cin = cin0;
  for (int64_t l = 0; l < num_layers; ++l) {
    const bool last = l == num_layers - 1;
    const int64_t cout = last ? 1 : hidden;
    float* dst = last ? out : (src == a ? b : a);
    for (int64_t o = 0; o < cout; ++o) {
      float* __restrict d = dst + o * nx;
      const float bo = bias[l][o];
      for (int64_t x = 0; x < nx; ++x) d[x] = bo;
      const float* wo = w[l] + o * cin;
      // Input channels in order, as F.conv2d's 1x1 sums them (the order moves logits by ulps).
      for (int64_t c = 0; c < cin; ++c) {
        const float k = wo[c];
        const float* __restrict s = src + c * nx;
        for (int64_t x = 0; x < nx; ++x) d[x] += k * s[x];
      }
      if (!last) {
        for (int64_t x = 0; x < nx; ++x) d[x] = d[x] > 0.f ? d[x] : 0.f;
      }
    }
    src = dst;
    cin = cout;
  }
}

struct Candidate {
  float score;
  int64_t index;  // location * num_classes + class, within its level
};

}  // namespace

int64_t dynconv_num_params(const DynConvNet& net) {
  check_net(net);
  int64_t total = 0;
  for (int64_t l = 0; l < net.num_layers; ++l)
    total += (layer_in(net, l) + 1) * layer_out(net, l);  // < 64 * 4097 * 4096: no overflow
  return total;
}

PointDetections decode_points(const std::vector<PointLevel>& levels, int64_t num_classes,
                              int64_t num_params, const PointDecodeOptions& opt) {
  if (num_classes < 1 || num_classes > std::numeric_limits<int32_t>::max())
    throw InvalidArgument("num_classes must be in [1, 2147483647], got " +
                          std::to_string(num_classes));
  if (num_params < 0 || num_params > (int64_t{1} << 24))
    throw InvalidArgument("num_params must be in [0, 2^24], got " + std::to_string(num_params));
  if (!(opt.conf >= 0.f && opt.conf <= 1.f)) throw InvalidArgument("conf must be in [0, 1]");
  if (!(opt.iou >= 0.f && opt.iou <= 1.f)) throw InvalidArgument("iou must be in [0, 1]");
  if (opt.max_det < 0) throw InvalidArgument("max_det must be >= 0");
  if (opt.nms_pre < 1) throw InvalidArgument("nms_pre must be >= 1");
  if (!(std::isfinite(opt.offset) && opt.offset >= 0.f && opt.offset < 1.f))
    throw InvalidArgument("prior offset must be in [0, 1)");
  if (!(opt.clip_w > 0.f && opt.clip_h > 0.f && std::isfinite(opt.clip_w) &&
        std::isfinite(opt.clip_h)))
    throw InvalidArgument("clip size (the model input) must be positive and finite");
  if (!opt.class_allowed.empty() && static_cast<int64_t>(opt.class_allowed.size()) != num_classes)
    throw InvalidArgument("class filter must have one flag per class (" +
                          std::to_string(num_classes) + ")");
  for (size_t l = 0; l < levels.size(); ++l) {
    const PointLevel& v = levels[l];
    int64_t hw, planes;
    if (v.h < 1 || v.w < 1 || v.stride < 1 || v.stride > detail::kMaxSide ||
        detail::mul_overflows(v.h, v.w, &hw) ||
        detail::mul_overflows(hw, std::max<int64_t>(num_classes, num_params), &planes) ||
        v.h > detail::kMaxSide / v.stride || v.w > detail::kMaxSide / v.stride)
      throw InvalidArgument("level " + std::to_string(l) + " has a bad size (" +
                            std::to_string(v.h) + "x" + std::to_string(v.w) + ", stride " +
                            std::to_string(v.stride) + ")");
    if (v.cls == nullptr || v.box == nullptr || (num_params > 0 && v.params == nullptr))
      throw InvalidArgument("level " + std::to_string(l) + " has a null map");
  }

  // sigmoid(x) > conf is tested on float sigmoids, as the reference compares them; logits well
  // below the threshold's logit are skipped without an exp.
  const double lo = opt.conf <= 0.f   ? -std::numeric_limits<double>::infinity()
                    : opt.conf >= 1.f ? std::numeric_limits<double>::infinity()
                                      : std::log(opt.conf / (1.0 - opt.conf)) - 1e-3;
  std::vector<float> boxes, scores, priors;
  std::vector<int32_t> classes;
  std::vector<const float*> param_src;  // first parameter of each candidate, plane stride hw
  std::vector<int64_t> param_stride;
  std::vector<Candidate> cand;
  for (const PointLevel& v : levels) {
    const int64_t hw = v.h * v.w;
    cand.clear();
    for (int64_t c = 0; c < num_classes; ++c) {
      if (!opt.class_allowed.empty() && opt.class_allowed[static_cast<size_t>(c)] == 0) continue;
      const float* plane = v.cls + c * hw;
      for (int64_t k = 0; k < hw; ++k) {
        const float x = plane[k];
        if (std::isnan(x)) throw InvalidArgument("class scores contain NaN");
        if (!(x > lo)) continue;
        const float s = 1.f / (1.f + std::exp(-x));
        if (s > opt.conf) cand.push_back({s, k * num_classes + c});
      }
    }
    // The nms_pre best by descending score; ties by flattened index (torch's sort leaves them
    // unspecified).
    auto better = [](const Candidate& a, const Candidate& b) {
      return a.score > b.score || (a.score == b.score && a.index < b.index);
    };
    if (static_cast<int64_t>(cand.size()) > opt.nms_pre) {
      std::nth_element(cand.begin(), cand.begin() + opt.nms_pre, cand.end(), better);
      cand.resize(static_cast<size_t>(opt.nms_pre));
    }
    std::sort(cand.begin(), cand.end(), better);
    const float stride = static_cast<float>(v.stride);
    for (const Candidate& k : cand) {
      const int64_t loc = k.index / num_classes;
      const int64_t i = loc / v.w, j = loc % v.w;
      const float px = (static_cast<float>(j) + opt.offset) * stride;
      const float py = (static_cast<float>(i) + opt.offset) * stride;
      const float* d = v.box + loc;
      const float dl = d[0], dt = d[hw], dr = d[2 * hw], db = d[3 * hw];
      if (!(std::isfinite(dl) && std::isfinite(dt) && std::isfinite(dr) && std::isfinite(db)))
        throw InvalidArgument("box distances contain NaN or infinity");
      const float x1 = std::clamp(px - dl, 0.f, opt.clip_w);
      const float y1 = std::clamp(py - dt, 0.f, opt.clip_h);
      const float x2 = std::clamp(px + dr, 0.f, opt.clip_w);
      const float y2 = std::clamp(py + db, 0.f, opt.clip_h);
      if (!(x2 - x1 > 0.f && y2 - y1 > 0.f)) continue;  // min_bbox_size 0: strictly positive
      boxes.insert(boxes.end(), {x1, y1, x2, y2});
      scores.push_back(k.score);
      classes.push_back(static_cast<int32_t>(k.index % num_classes));
      priors.insert(priors.end(), {px, py, stride});
      param_src.push_back(num_params > 0 ? v.params + loc : nullptr);
      param_stride.push_back(hw);
    }
  }

  // Batched NMS over all levels' candidates by descending score (ties: level, then rank order).
  const int64_t n = static_cast<int64_t>(scores.size());
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&scores](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  const std::vector<int64_t> keep = nms_ordered(boxes.data(), classes.data(), order.data(), n,
                                                opt.iou, opt.max_det, opt.agnostic);

  PointDetections out;
  out.num_params = num_params;
  const size_t k = keep.size();
  out.boxes.reserve(4 * k);
  out.scores.reserve(k);
  out.classes.reserve(k);
  out.priors.reserve(3 * k);
  out.params.resize(k * static_cast<size_t>(num_params));
  for (size_t r = 0; r < k; ++r) {
    const auto i = static_cast<size_t>(keep[r]);
    out.boxes.insert(out.boxes.end(), boxes.begin() + 4 * i, boxes.begin() + 4 * i + 4);
    out.scores.push_back(scores[i]);
    out.classes.push_back(classes[i]);
    out.priors.insert(out.priors.end(), priors.begin() + 3 * i, priors.begin() + 3 * i + 3);
    float* dst = out.params.data() + r * static_cast<size_t>(num_params);
    for (int64_t p = 0; p < num_params; ++p) {
      dst[p] = param_src[i][p * param_stride[i]];
      if (!std::isfinite(dst[p])) throw InvalidArgument("instance parameters contain NaN or inf");
    }
  }
  return out;
}

Masks dynamic_masks(const ProtoView& feat, const float* params, const float* priors,
                    const float* boxes, int64_t n, const Letterbox& lb, const DynMaskOptions& opt) {
  const DynConvNet& net = opt.net;
  const int64_t num_params = dynconv_num_params(net);
  if (feat.data == nullptr || feat.height < 1 || feat.width < 1)
    throw InvalidArgument("mask feature must be a non-empty (channels, height, width) array");
  if (feat.dtype != DType::kFloat32) throw InvalidArgument("mask feature must be float32");
  if (feat.channels != net.feat_channels)
    throw InvalidArgument("mask feature has " + std::to_string(feat.channels) +
                          " channels; the network expects " + std::to_string(net.feat_channels));
  detail::check_extent("mask feature", {feat.channels, feat.height, feat.width},
                       {feat.stride_c, feat.stride_y, feat.stride_x});
  if (opt.feat_stride < 1 || opt.feat_stride > 256)
    throw InvalidArgument("feature stride must be in [1, 256], got " +
                          std::to_string(opt.feat_stride));
  if (feat.height > kMaxPrototypeSide || feat.width > kMaxPrototypeSide)
    throw InvalidArgument("mask feature of " + std::to_string(feat.height) + "x" +
                          std::to_string(feat.width) + " is larger than any model's");
  if (lb.resize != Resize::kKeepRatio || lb.pad_top != 0 || lb.pad_left != 0 || lb.src_h < 1 ||
      lb.src_w < 1 || lb.new_h < 1 || lb.new_w < 1 || lb.src_h > detail::kMaxSide ||
      lb.src_w > detail::kMaxSide)
    throw InvalidArgument("dynamic masks need a keep_ratio letterbox (from make_letterbox)");
  if (feat.height * opt.feat_stride != lb.dst_h || feat.width * opt.feat_stride != lb.dst_w)
    throw InvalidArgument("mask feature of " + std::to_string(feat.height) + "x" +
                          std::to_string(feat.width) + " at stride " +
                          std::to_string(opt.feat_stride) + " does not cover the model input " +
                          std::to_string(lb.dst_h) + "x" + std::to_string(lb.dst_w));
  if (!(std::isfinite(opt.coord_offset) && std::isfinite(opt.coord_scale) && opt.coord_scale > 0))
    throw InvalidArgument("coordinate offset and scale must be finite, the scale positive");
  if (!(opt.mask_threshold > 0.f && opt.mask_threshold < 1.f))
    throw InvalidArgument("mask_threshold must be in (0, 1)");
  if (opt.soft && opt.mask_threshold != 0.5f)
    throw InvalidArgument("soft masks need mask_threshold 0.5");
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / num_params)
    throw InvalidArgument("number of instances must be >= 0");
  if (n > 0 && (params == nullptr || priors == nullptr))
    throw InvalidArgument("parameters or priors are null");
  for (int64_t i = 0; i < n; ++i) {
    const float* p = priors + 3 * i;
    if (!(std::isfinite(p[0]) && std::isfinite(p[1]) && std::isfinite(p[2]) && p[2] > 0.f))
      throw InvalidArgument("priors must be finite with a positive stride");
  }
  for (int64_t i = 0; i < n * num_params; ++i) {
    if (!std::isfinite(params[i])) throw InvalidArgument("instance parameters contain NaN or inf");
  }

  // mmdet: mask logits x feat_stride, then resized to ceil(side * (1 / scale)) and cut to the
  // image. Its row count multiplies the height by the width's inverse scale (scale_factor[0]):
  // kept, since it moves rows by a fraction of a pixel where the two scales differ by rounding.
  const double inv_w = 1.0 / (static_cast<double>(lb.new_w) / static_cast<double>(lb.src_w));
  const double inv_h = 1.0 / (static_cast<double>(lb.new_h) / static_cast<double>(lb.src_h));
  const double out_h = std::ceil(static_cast<double>(lb.dst_h) * inv_w);
  const double out_w = std::ceil(static_cast<double>(lb.dst_w) * inv_h);
  if (!(out_h >= 1 && out_w >= 1 && out_h <= detail::kMaxSide && out_w <= detail::kMaxSide))
    throw InvalidArgument("letterbox gives a mask size out of range");
  const detail::ResampleAxis ax{feat.width, opt.feat_stride, 0, lb.dst_w,
                                static_cast<int64_t>(out_w)};
  const detail::ResampleAxis ay{feat.height, opt.feat_stride, 0, lb.dst_h,
                                static_cast<int64_t>(out_h)};

  // Threshold p > t is logit > log(t / (1 - t)): moved into the last bias so the renderer tests 0.
  const float shift =
      opt.mask_threshold == 0.5f
          ? 0.f
          : static_cast<float>(std::log(opt.mask_threshold / (1.0 - opt.mask_threshold)));
  const int64_t cin0 = net.feat_channels + 2;
  const float fs = static_cast<float>(opt.feat_stride);
  thread_local std::vector<float> in, a, b, last_bias;
  auto logits = [&](int64_t i, int64_t x0, int64_t x1, int64_t y0, int64_t y1, int64_t row,
                    float* out) {
    const int64_t nx = x1 - x0;
    in.resize(static_cast<size_t>(cin0 * nx));
    a.resize(static_cast<size_t>(net.channels * nx));
    b.resize(static_cast<size_t>(net.channels * nx));
    const float* p = params + i * num_params;
    std::vector<const float*> w(static_cast<size_t>(net.num_layers)),
        bias(static_cast<size_t>(net.num_layers));
    const float* cursor = p;
    for (int64_t l = 0; l < net.num_layers; ++l) {
      w[static_cast<size_t>(l)] = cursor;
      cursor += layer_in(net, l) * layer_out(net, l);
    }
    for (int64_t l = 0; l < net.num_layers; ++l) {
      bias[static_cast<size_t>(l)] = cursor;
      cursor += layer_out(net, l);
    }
    last_bias.assign(1, bias.back()[0] - shift);
    bias.back() = last_bias.data();
    // Relative coordinates as mmdet: (prior - location) / (prior stride * coord_scale), float.
    const float* pr = priors + 3 * i;
    const float norm = pr[2] * opt.coord_scale;
    for (int64_t x = 0; x < nx; ++x)
      in[static_cast<size_t>(x)] =
          (pr[0] - (static_cast<float>(x0 + x) + opt.coord_offset) * fs) / norm;
    for (int64_t y = y0; y < y1; ++y) {
      const float ry = (pr[1] - (static_cast<float>(y) + opt.coord_offset) * fs) / norm;
      std::fill(in.begin() + nx, in.begin() + 2 * nx, ry);
      const float* base = static_cast<const float*>(feat.data) + y * feat.stride_y;
      for (int64_t c = 0; c < net.feat_channels; ++c) {
        const float* src = base + c * feat.stride_c + x0 * feat.stride_x;
        float* dst = in.data() + (2 + c) * nx;
        for (int64_t x = 0; x < nx; ++x) dst[x] = src[x * feat.stride_x];
      }
      network_row(in.data(), nx, w.data(), bias.data(), net.num_layers, cin0, net.channels,
                  a.data(), b.data(), out + (y - y0) * row);
    }
  };
  MaskOptions mo;
  mo.soft = opt.soft;
  mo.drop_empty = opt.drop_empty;
  return detail::render_masks(ax, ay, feat.height, feat.width, boxes, n, lb.src_h, lb.src_w, mo,
                              logits);
}

}  // namespace edgeseg
