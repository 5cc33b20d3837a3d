// The whole YOLO postprocess of one image (postprocess.hpp): tensors to views, decode, the
// suppression of the caller's choice, unletterbox, masks.
#include "edgeseg/postprocess.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "checks.hpp"
#include "edgeseg/dynconv.hpp"
#include "edgeseg/nms_variants.hpp"
#include "edgeseg/paste.hpp"
#include "edgeseg/solov2.hpp"
#include "edgeseg/split.hpp"
#include "edgeseg/yolact.hpp"

namespace edgeseg {
namespace {

// Fast and Matrix NMS settings of the references (YOLACT's top_k, SOLOv2's Gaussian sigma), as
// the Python heads' suppress() uses them.
constexpr int64_t kFastTopK = 200;
constexpr float kMatrixSigma = 2.f;

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A letterbox the caller filled by hand must be one make_letterbox would make: its fields are
// trusted by the mask geometry.
void check_letterbox(const Letterbox& lb) {
  const Letterbox ref = make_letterbox(lb.src_h, lb.src_w, lb.dst_h, lb.dst_w, lb.resize);
  if (ref.new_h != lb.new_h || ref.new_w != lb.new_w || ref.pad_top != lb.pad_top ||
      ref.pad_left != lb.pad_left)
    throw InvalidArgument("letterbox is not one make_letterbox makes for a " +
                          std::to_string(lb.src_h) + "x" + std::to_string(lb.src_w) +
                          " image in a " + std::to_string(lb.dst_h) + "x" +
                          std::to_string(lb.dst_w) + " input: make it with make_letterbox");
}

void check_options(const PostprocessOptions& opt) {
  if (!(opt.conf >= 0.f && opt.conf <= 1.f)) throw InvalidArgument("conf must be in [0, 1]");
  if (!(opt.iou >= 0.f && opt.iou <= 1.f)) throw InvalidArgument("iou must be in [0, 1]");
  if (opt.max_det < 0) throw InvalidArgument("max_det must be >= 0");
  if (opt.pre_nms_topk < 1) throw InvalidArgument("pre_nms_topk must be >= 1");
}

// Element strides of a tensor: its own, or dense row-major.
std::vector<int64_t> strides_of(const Tensor& t, const char* what) {
  for (int64_t d : t.shape)
    if (d < 0)
      throw InvalidArgument(std::string(what) + " has a negative size " + shape_str(t.shape));
  if (!t.strides.empty()) {
    if (t.strides.size() != t.shape.size())
      throw InvalidArgument(std::string(what) + " has " + std::to_string(t.strides.size()) +
                            " strides for " + std::to_string(t.shape.size()) + " dimensions");
    return t.strides;
  }
  std::vector<int64_t> s(t.shape.size(), 1);
  int64_t step = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    s[i] = step;
    if (detail::mul_overflows(step, std::max<int64_t>(t.shape[i], 1), &step))
      throw InvalidArgument(std::string(what) + " is too large " + shape_str(t.shape));
  }
  return s;
}

// A rank-2 tensor as a view, its two axes swapped when `transpose`.
View2D view_of(const Tensor& t, bool transpose, const char* what) {
  if (t.shape.size() != 2)
    throw InvalidArgument(std::string(what) + " of one image must have 2 dimensions, got " +
                          shape_str(t.shape));
  const auto s = strides_of(t, what);
  View2D v;
  v.data = t.data;
  v.dtype = t.dtype;
  v.quant = t.quant;
  v.rows = t.shape[transpose ? 1 : 0];
  v.cols = t.shape[transpose ? 0 : 1];
  v.stride_row = s[transpose ? 1 : 0];
  v.stride_col = s[transpose ? 0 : 1];
  return v;
}

ProtoView protos_of(const Tensor& t, bool nhwc) {
  if (t.shape.size() != 3)
    throw InvalidArgument("the prototypes output of one image must have 3 dimensions, got " +
                          shape_str(t.shape));
  const auto s = strides_of(t, "the prototypes output");
  ProtoView p;
  p.data = t.data;
  p.dtype = t.dtype;
  p.quant = t.quant;
  const int c = nhwc ? 2 : 0, y = nhwc ? 0 : 1, x = nhwc ? 1 : 2;
  p.channels = t.shape[c];
  p.height = t.shape[y];
  p.width = t.shape[x];
  p.stride_c = s[c];
  p.stride_y = s[y];
  p.stride_x = s[x];
  return p;
}

// One level tensor of one image as channels x cells: [C, H, W] or, NHWC, [H, W, C]; the two grid
// axes must be one run of cells (any dense or sliced-by-channel tensor is).
View2D level_view(const Tensor& t, bool nhwc, int64_t grid_h, int64_t grid_w, const char* what) {
  if (t.shape.size() != 3)
    throw InvalidArgument(std::string(what) + " of one image must have 3 dimensions, got " +
                          shape_str(t.shape));
  const auto s = strides_of(t, what);
  const int c = nhwc ? 2 : 0, y = nhwc ? 0 : 1, x = nhwc ? 1 : 2;
  if (t.shape[y] != grid_h || t.shape[x] != grid_w)
    throw InvalidArgument(std::string(what) + " " + shape_str(t.shape) + " does not have the " +
                          std::to_string(grid_h) + "x" + std::to_string(grid_w) +
                          " grid of its level");
  if (grid_h > 1 && s[y] != grid_w * s[x])
    throw InvalidArgument(std::string(what) + " has strides whose rows are not one run of cells");
  View2D v;
  v.data = t.data;
  v.dtype = t.dtype;
  v.quant = t.quant;
  v.rows = t.shape[c];
  v.cols = grid_h * grid_w;
  v.stride_row = s[c];
  v.stride_col = s[x];
  return v;
}

const Tensor& output_at(const std::vector<Tensor>& outputs, int64_t i, const char* what) {
  if (i < 0 || i >= static_cast<int64_t>(outputs.size()))
    throw InvalidArgument(std::string("the layout's ") + what + " is output " + std::to_string(i) +
                          ", but " + std::to_string(outputs.size()) + " outputs were given");
  return outputs[static_cast<size_t>(i)];
}

// A dense float32 [C, h, w] tensor (what the planar point-head decoders read).
const float* planar(const Tensor& t, const char* what, int64_t h, int64_t w) {
  Tensor dense = t;
  dense.strides.clear();
  if (t.shape.size() != 3 || t.dtype != DType::kFloat32 ||
      (!t.strides.empty() && t.strides != strides_of(dense, what)))
    throw InvalidArgument(std::string(what) + " " + shape_str(t.shape) +
                          " must be a dense float32 [C, h, w] map of one image");
  if (h >= 0 && (t.shape[1] != h || t.shape[2] != w))
    throw InvalidArgument(std::string(what) + " " + shape_str(t.shape) + " does not have the " +
                          std::to_string(h) + "x" + std::to_string(w) + " grid of its level");
  return static_cast<const float*>(t.data);
}

template <typename T>
std::vector<T> gather(const std::vector<T>& v, const std::vector<int64_t>& idx, size_t width) {
  std::vector<T> out;
  out.reserve(idx.size() * width);
  for (int64_t i : idx) {
    const auto first = v.begin() + static_cast<std::ptrdiff_t>(i * static_cast<int64_t>(width));
    out.insert(out.end(), first, first + static_cast<std::ptrdiff_t>(width));
  }
  return out;
}

// Candidates' masks for mask-IoU NMS at prototype resolution in the letterboxed input: a sixteenth
// of the input's pixels keeps mask NMS cheap over hundreds of candidates; the survivors' masks are
// then assembled at source resolution as always.
Masks candidate_masks(const Detections& c, const ProtoView& protos, const Letterbox& lb) {
  if (lb.dst_h % protos.height != 0 || lb.dst_w % protos.width != 0 ||
      lb.dst_h / protos.height != lb.dst_w / protos.width)
    throw InvalidArgument("prototypes of " + std::to_string(protos.height) + "x" +
                          std::to_string(protos.width) + " are not the " +
                          std::to_string(lb.dst_h) + "x" + std::to_string(lb.dst_w) +
                          " input divided by one whole stride");
  const auto stride = static_cast<float>(lb.dst_h / protos.height);
  const auto ph = static_cast<float>(protos.height), pw = static_cast<float>(protos.width);
  std::vector<float> boxes(c.boxes.size());
  for (size_t i = 0; i < boxes.size(); ++i) {
    const float hi = i % 2 == 0 ? pw : ph;  // x1 y1 x2 y2
    boxes[i] = std::min(std::max(c.boxes[i] / stride, 0.f), hi);
  }
  MaskOptions mo;
  mo.drop_empty = false;
  return assemble_masks(protos, c.coeffs.data(), boxes.data(), c.size(), protos.height,
                        protos.width, protos.height, protos.width, mo);
}

NmsResult suppress(const Detections& c, const ProtoView& protos, const Letterbox& lb,
                   const PostprocessOptions& opt) {
  const int64_t n = c.size();
  switch (opt.nms) {
    case Suppression::kFast: {
      ScoredBoxes s;
      s.boxes = c.boxes.data();
      s.scores = c.scores.data();
      s.classes = c.classes.data();
      s.n = n;
      FastNmsOptions o;
      o.iou = opt.iou;
      o.top_k = kFastTopK;
      o.max_det = opt.max_det;
      o.agnostic = opt.agnostic;
      return fast_nms(s, o);
    }
    case Suppression::kMatrix: {
      MatrixNmsOptions o;
      o.sigma = kMatrixSigma;
      o.max_det = opt.max_det;
      o.filter_thr = opt.conf;
      o.agnostic = opt.agnostic;
      return matrix_nms(c.boxes.data(), c.scores.data(), c.classes.data(), n, o);
    }
    case Suppression::kMask: {
      const Masks m = candidate_masks(c, protos, lb);
      MaskCrops crops;
      crops.rects = m.rects.data();
      crops.offsets = m.offsets.data();
      crops.bits = m.bits.data();
      crops.bits_size = static_cast<int64_t>(m.bits.size());
      return mask_nms(crops, c.scores.data(), c.classes.data(), n, opt.iou, opt.max_det,
                      opt.agnostic);
    }
    default:
      throw InvalidArgument("unknown suppression kind");
  }
}

}  // namespace

DecodeOptions decode_options_for(const PostprocessOptions& opt, int64_t num_classes) {
  check_options(opt);
  if (!opt.class_allowed.empty() && static_cast<int64_t>(opt.class_allowed.size()) != num_classes)
    throw InvalidArgument("class filter must have one flag per class (" +
                          std::to_string(num_classes) + ")");
  DecodeOptions d;
  d.conf = opt.conf;
  d.pre_nms_topk = opt.pre_nms_topk;
  d.agnostic = opt.agnostic;
  d.class_allowed = opt.class_allowed;
  if (opt.nms == Suppression::kBox) {
    d.iou = opt.iou;
    d.max_det = opt.max_det;
  } else {
    d.iou = 1.f;
    d.max_det = opt.pre_nms_topk;
  }
  return d;
}

Instances finish_yolo(Detections&& c, const ProtoView& protos, const Letterbox& lb,
                      const PostprocessOptions& opt) {
  check_letterbox(lb);
  check_options(opt);
  const int64_t n = c.size();
  if (n < 0 || c.boxes.size() != static_cast<size_t>(4 * n) ||
      c.classes.size() != static_cast<size_t>(n) || c.num_coeffs != protos.channels ||
      c.coeffs.size() != static_cast<size_t>(n * c.num_coeffs))
    throw InvalidArgument("candidates must have 4 box values, a class and " +
                          std::to_string(protos.channels) +
                          " coefficients (one per prototype) each; got " + std::to_string(n) +
                          " scores, " + std::to_string(c.boxes.size()) + " box values and " +
                          std::to_string(c.coeffs.size()) + " coefficients");
  if (opt.nms != Suppression::kBox && n > 0) {
    const NmsResult kept = suppress(c, protos, lb, opt);
    c.boxes = gather(c.boxes, kept.keep, 4);
    c.coeffs = gather(c.coeffs, kept.keep, static_cast<size_t>(c.num_coeffs));
    c.scores = kept.scores;
    c.classes = kept.classes;
  }
  const int64_t k = c.size();
  unletterbox_boxes(c.boxes.data(), k, lb);
  MaskOptions mo;
  mo.soft = opt.soft_masks;
  Instances out;
  out.masks = assemble_masks(protos, c.coeffs.data(), c.boxes.data(), k, lb.dst_h, lb.dst_w,
                             lb.src_h, lb.src_w, mo);
  const auto& keep = out.masks.keep;
  if (static_cast<int64_t>(keep.size()) == k) {  // every mask has a pixel: nothing to drop
    out.boxes = std::move(c.boxes);
    out.scores = std::move(c.scores);
    out.classes = std::move(c.classes);
  } else {  // instances whose mask is empty are dropped, as in the reference
    out.boxes = gather(c.boxes, keep, 4);
    out.scores = gather(c.scores, keep, 1);
    out.classes = gather(c.classes, keep, 1);
  }
  return out;
}

Instances postprocess_yolo(const YoloLayout& layout, const std::vector<Tensor>& outputs,
                           const Letterbox& lb, const PostprocessOptions& opt) {
  const auto count = static_cast<int64_t>(outputs.size());
  if (layout.detections < 0 || layout.detections >= count || layout.prototypes < 0 ||
      layout.prototypes >= count || layout.detections == layout.prototypes)
    throw InvalidArgument("the layout names outputs " + std::to_string(layout.detections) +
                          " (detections) and " + std::to_string(layout.prototypes) +
                          " (prototypes), but " + std::to_string(count) + " outputs were given");
  const ProtoView protos =
      protos_of(outputs[static_cast<size_t>(layout.prototypes)], layout.prototypes_nhwc);
  if (protos.channels != layout.num_coeffs)
    throw InvalidArgument("the prototypes output " +
                          shape_str(outputs[static_cast<size_t>(layout.prototypes)].shape) +
                          " has " + std::to_string(protos.channels) + " prototypes, the layout " +
                          std::to_string(layout.num_coeffs) + " coefficients");
  const Tensor& det = outputs[static_cast<size_t>(layout.detections)];
  check_letterbox(lb);
  DecodeOptions d = decode_options_for(opt, layout.num_classes);
  if (layout.boxes_normalized) {
    d.box_scale_x = static_cast<float>(lb.dst_w);
    d.box_scale_y = static_cast<float>(lb.dst_h);
  }
  const char* what = "the detections output";
  switch (layout.head) {
    case YoloHead::kEndToEnd: {
      // NMS ran in the graph: only the threshold, class filter and max_det apply, and the
      // suppressed candidates are not in the output for another kind of suppression to see.
      d.max_det = opt.max_det;
      PostprocessOptions finish = opt;
      finish.nms = Suppression::kBox;
      return finish_yolo(decode_yolo_e2e(view_of(det, false, what), layout.num_classes, d), protos,
                         lb, finish);
    }
    case YoloHead::kObjectness:
      return finish_yolo(decode_yolo(view_of(det, layout.anchor_major, what), layout.num_classes, d,
                                     nullptr, true),
                         protos, lb, opt);
    default:
      return finish_yolo(
          decode_yolo(view_of(det, layout.anchor_major, what), layout.num_classes, d), protos, lb,
          opt);
  }
}

Instances postprocess_yolo_split(const SplitLayout& layout, const std::vector<Tensor>& outputs,
                                 const Letterbox& lb, const PostprocessOptions& opt) {
  check_letterbox(lb);
  const ProtoView protos =
      protos_of(output_at(outputs, layout.prototypes, "prototypes"), layout.prototypes_nhwc);
  DecodeOptions d = decode_options_for(opt, layout.num_classes);
  const bool nhwc = layout.levels_nhwc;
  if (layout.kind == SplitLayout::Kind::kScored) {
    const View2D boxes =
        view_of(output_at(outputs, layout.boxes, "boxes"), false, "the boxes output");
    const Tensor& s = output_at(outputs, layout.scores, "scores");
    const Tensor& c = output_at(outputs, layout.classes, "class ids");
    if (s.shape.size() != 1 || c.shape.size() != 1 || s.shape[0] != boxes.rows ||
        c.shape[0] != boxes.rows)
      throw InvalidArgument("scores " + shape_str(s.shape) + " and class ids " +
                            shape_str(c.shape) + " must hold one value per box (" +
                            std::to_string(boxes.rows) + ")");
    View2D scores;
    scores.data = s.data;
    scores.dtype = s.dtype;
    scores.quant = s.quant;
    scores.rows = s.shape[0];
    scores.cols = 1;
    scores.stride_row = strides_of(s, "the scores output")[0];
    scores.stride_col = 1;
    // Class ids in any dtype (some exports keep the argmax in float: rounded, as the index it is).
    const int64_t cs = strides_of(c, "the class-ids output")[0];
    std::vector<int32_t> classes(static_cast<size_t>(c.shape[0]));
    for (int64_t i = 0; i < c.shape[0]; ++i) {
      const float v = std::nearbyint(load(c.data, c.dtype, i * cs, c.quant));
      classes[static_cast<size_t>(i)] =
          v >= -2147483648.f && v < 2147483648.f ? static_cast<int32_t>(v) : -1;  // checked there
    }
    const View2D coeffs = view_of(output_at(outputs, layout.coeffs, "coefficients"), false,
                                  "the coefficients output");
    return finish_yolo(
        decode_yolo_scored(boxes, scores, classes.data(), coeffs, layout.num_classes, d), protos,
        lb, opt);
  }
  if (layout.kind == SplitLayout::Kind::kTwoWay) {
    const View2D pred = view_of(output_at(outputs, layout.boxes, "boxes and scores"),
                                layout.anchor_major, "the boxes-and-scores output");
    const View2D coeffs = view_of(output_at(outputs, layout.coeffs, "coefficients"),
                                  layout.anchor_major, "the coefficients output");
    if (layout.boxes_normalized) {
      d.box_scale_x = static_cast<float>(lb.dst_w);
      d.box_scale_y = static_cast<float>(lb.dst_h);
    }
    return finish_yolo(decode_yolo(pred, layout.num_classes, d, &coeffs), protos, lb, opt);
  }
  if (layout.kind == SplitLayout::Kind::kAnchors) {
    std::vector<AnchorLevel> levels;
    for (const auto& lv : layout.levels) {
      AnchorLevel a;
      a.preds = level_view(output_at(outputs, lv.boxes, "predictions"), nhwc, lv.grid_h, lv.grid_w,
                           "a predictions output");
      a.coeffs = level_view(output_at(outputs, lv.coeffs, "coefficients"), nhwc, lv.grid_h,
                            lv.grid_w, "a coefficients output");
      a.grid_h = lv.grid_h;
      a.grid_w = lv.grid_w;
      a.stride = lv.stride;
      a.anchors = lv.anchors;
      levels.push_back(std::move(a));
    }
    return finish_yolo(decode_yolov5_split(levels, layout.num_classes, d), protos, lb, opt);
  }
  std::vector<SplitLevel> levels;
  for (const auto& lv : layout.levels) {
    SplitLevel l;
    l.boxes = level_view(output_at(outputs, lv.boxes, "boxes"), nhwc, lv.grid_h, lv.grid_w,
                         "a boxes output");
    l.scores = level_view(output_at(outputs, lv.scores, "scores"), nhwc, lv.grid_h, lv.grid_w,
                          "a scores output");
    l.coeffs = level_view(output_at(outputs, lv.coeffs, "coefficients"), nhwc, lv.grid_h, lv.grid_w,
                          "a coefficients output");
    if (lv.score_sum >= 0)
      l.score_sum = level_view(output_at(outputs, lv.score_sum, "score sum"), nhwc, lv.grid_h,
                               lv.grid_w, "a score-sum output");
    l.grid_h = lv.grid_h;
    l.grid_w = lv.grid_w;
    l.stride = lv.stride;
    levels.push_back(l);
  }
  return finish_yolo(decode_yolo_split(levels, layout.num_classes, d), protos, lb, opt);
}

Instances postprocess_yolact(const YolactLayout& layout, const std::vector<Tensor>& outputs,
                             const Letterbox& lb, const PostprocessOptions& opt) {
  check_letterbox(lb);
  check_options(opt);
  if (opt.nms != Suppression::kFast && opt.nms != Suppression::kBox)
    throw InvalidArgument("YOLACT models support nms='fast' (the reference) or 'box'");
  const View2D boxes =
      view_of(output_at(outputs, layout.boxes, "boxes"), false, "the boxes output");
  const View2D conf = view_of(output_at(outputs, layout.conf, "conf"), false, "the conf output");
  const View2D coeffs =
      view_of(output_at(outputs, layout.coeffs, "coefficients"), false, "the mask output");
  const ProtoView protos =
      protos_of(output_at(outputs, layout.prototypes, "prototypes"), layout.prototypes_nhwc);
  View2D priors;
  const View2D* priors_ptr = nullptr;
  if (!layout.boxes_decoded) {
    if (layout.priors_output >= 0) {
      const Tensor& t = output_at(outputs, layout.priors_output, "priors");
      Tensor dense = t;
      dense.strides.clear();
      const auto dense_strides = strides_of(dense, "the priors output");
      int64_t count = 1;
      for (int64_t d : t.shape) count *= d;  // no overflow: strides_of checked the extent
      if (t.dtype != DType::kFloat32 || count % 4 != 0 ||
          (!t.strides.empty() && t.strides != dense_strides))
        throw InvalidArgument("the priors output " + shape_str(t.shape) +
                              " must be dense float32 rows of cx, cy, w, h");
      priors.data = t.data;
      priors.rows = count / 4;
    } else {
      priors.data = layout.priors.data();
      priors.rows = static_cast<int64_t>(layout.priors.size() / 4);
    }
    priors.cols = 4;
    priors.stride_row = 4;
    priors.stride_col = 1;
    priors_ptr = &priors;
  }
  YolactOptions yo;
  yo.conf = opt.conf;
  yo.iou = opt.iou;
  yo.top_k = layout.top_k;
  yo.max_det = opt.max_det;
  yo.cross_class = opt.agnostic;
  yo.fast = opt.nms == Suppression::kFast;
  yo.class_allowed = opt.class_allowed;
  Detections d = decode_yolact(boxes, priors_ptr, conf, coeffs, yo);
  MaskOptions mo;
  mo.soft = opt.soft_masks;
  mo.drop_empty = false;  // yolact keeps every detection
  Instances out;
  out.masks =
      yolact_masks(protos, d.coeffs.data(), d.boxes.data(), d.size(), lb.src_h, lb.src_w, mo);
  // Boxes to source pixels as yolact's sanitize_coordinates (padding 0, no integer cast): each
  // pair scaled, ordered, the low side clamped at 0 and the high one at the image side.
  out.boxes.resize(d.boxes.size());
  for (size_t i = 0; i < d.boxes.size(); i += 4) {
    for (size_t lo : {size_t{0}, size_t{1}}) {
      const auto side = static_cast<float>(lo == 0 ? lb.src_w : lb.src_h);
      const float a = d.boxes[i + lo] * side, b = d.boxes[i + lo + 2] * side;
      out.boxes[i + lo] = std::max(std::min(a, b), 0.f);
      out.boxes[i + lo + 2] = std::min(std::max(a, b), side);
    }
  }
  out.scores = std::move(d.scores);
  out.classes = std::move(d.classes);
  return out;
}

Instances postprocess_rtmdet(const RtmdetLayout& layout, const std::vector<Tensor>& outputs,
                             const Letterbox& lb, const PostprocessOptions& opt) {
  check_letterbox(lb);
  check_options(opt);
  if (opt.nms != Suppression::kBox)
    throw InvalidArgument("the rtmdet family decodes with nms='box' (its reference)");
  const size_t nl = layout.cls.size();
  if (nl == 0 || layout.box.size() != nl || layout.kernel.size() != nl ||
      layout.strides.size() != nl)
    throw InvalidArgument("the layout needs class, box and kernel outputs and a stride per level");
  std::vector<PointLevel> levels(nl);
  int64_t num_classes = -1, num_params = -1;
  for (size_t l = 0; l < nl; ++l) {
    const Tensor& c = output_at(outputs, layout.cls[l], "class logits");
    levels[l].cls = planar(c, "a class-logits output", -1, -1);
    levels[l].h = c.shape[1];
    levels[l].w = c.shape[2];
    const Tensor& b = output_at(outputs, layout.box[l], "box distances");
    levels[l].box = planar(b, "a box-distances output", levels[l].h, levels[l].w);
    const Tensor& k = output_at(outputs, layout.kernel[l], "kernels");
    levels[l].params = planar(k, "a kernels output", levels[l].h, levels[l].w);
    if (b.shape[0] != 4) throw InvalidArgument("a box-distances output must have 4 channels");
    if (l > 0 && (c.shape[0] != num_classes || k.shape[0] != num_params))
      throw InvalidArgument("level " + std::to_string(l) +
                            ": class and kernel channel counts differ from level 0's");
    num_classes = c.shape[0];
    num_params = k.shape[0];
    levels[l].stride = layout.strides[l];
  }
  PointDecodeOptions po;
  po.conf = opt.conf;
  po.iou = opt.iou;
  po.max_det = opt.max_det;
  po.nms_pre = opt.pre_nms_topk;
  po.agnostic = opt.agnostic;
  po.class_allowed = opt.class_allowed;
  po.clip_h = static_cast<float>(lb.dst_h);
  po.clip_w = static_cast<float>(lb.dst_w);
  PointDetections d = decode_points(levels, num_classes, num_params, po);
  unletterbox_boxes(d.boxes.data(), d.size(), lb);
  const ProtoView feat = protos_of(output_at(outputs, layout.mask_feat, "mask feature"), false);
  if (feat.dtype != DType::kFloat32) throw InvalidArgument("the mask feature must be float32");
  DynMaskOptions mo;
  mo.net.feat_channels = feat.channels;
  mo.net.channels = layout.dyconv_channels;
  mo.net.num_layers = layout.num_dyconvs;
  mo.feat_stride = layout.strides[0];
  mo.mask_threshold = opt.mask_threshold;
  mo.soft = opt.soft_masks;
  mo.drop_empty = false;  // mmdet keeps every detection, empty mask or not
  if (dynconv_num_params(mo.net) != num_params)
    throw InvalidArgument("the kernels have " + std::to_string(num_params) +
                          " channels; the mask network needs " +
                          std::to_string(dynconv_num_params(mo.net)));
  Instances out;
  out.masks =
      dynamic_masks(feat, d.params.data(), d.priors.data(), d.boxes.data(), d.size(), lb, mo);
  out.boxes = std::move(d.boxes);
  out.scores = std::move(d.scores);
  out.classes = std::move(d.classes);
  return out;
}

namespace {

// Level `s`'s (channels, S, S) view of a flattened [G, channels] output, whose rows are the levels'
// cells in order, row-major within a level, from row `start`.
ProtoView flat_level(const Tensor& t, int64_t start, int64_t s, const char* what) {
  const auto st = strides_of(t, what);
  ProtoView v;
  v.dtype = DType::kFloat32;
  v.data = static_cast<const float*>(t.data) + start * st[0];
  v.channels = t.shape[1];
  v.height = v.width = s;
  v.stride_c = st[1];
  v.stride_y = s * st[0];
  v.stride_x = st[0];
  return v;
}

}  // namespace

Instances postprocess_solov2(const Solov2Layout& layout, const std::vector<Tensor>& outputs,
                             const Letterbox& lb, const PostprocessOptions& opt) {
  check_letterbox(lb);
  check_options(opt);
  const size_t nl = layout.grids.size();
  if (nl == 0 || layout.strides.size() != nl || layout.cate.size() != (layout.flat ? 1 : nl) ||
      layout.kernel.size() != layout.cate.size())
    throw InvalidArgument(
        "the layout needs a grid and stride per level and its category and "
        "kernel outputs (one per level, or one each when flat)");
  std::vector<Solov2Level> levels(nl);
  int64_t start = 0;
  for (size_t l = 0; l < nl; ++l) {
    const int64_t s = layout.grids[l];
    if (s < 1) throw InvalidArgument("grid sizes must be positive");
    if (layout.flat) {
      const Tensor& c = output_at(outputs, layout.cate[0], "category scores");
      const Tensor& k = output_at(outputs, layout.kernel[0], "kernels");
      int64_t total = 0;
      for (int64_t g : layout.grids) total += g * g;
      if (c.shape.size() != 2 || k.shape.size() != 2 || c.shape[0] != total ||
          k.shape[0] != total || c.dtype != DType::kFloat32 || k.dtype != DType::kFloat32)
        throw InvalidArgument(
            "cate_preds " + shape_str(c.shape) + " and kernel_preds " + shape_str(k.shape) +
            " must be float32 and have G = " + std::to_string(total) + " rows for the grids");
      levels[l].cate = flat_level(c, start, s, "cate_preds");
      levels[l].kernel = flat_level(k, start, s, "kernel_preds");
      start += s * s;
    } else {
      levels[l].cate = protos_of(output_at(outputs, layout.cate[l], "category scores"), false);
      levels[l].kernel = protos_of(output_at(outputs, layout.kernel[l], "kernels"), false);
    }
    levels[l].stride = static_cast<float>(layout.strides[l]);
  }
  Solov2Options so;
  so.score_thr = opt.conf;
  so.mask_thr = opt.mask_threshold;
  so.filter_thr = layout.filter_thr;
  so.nms_pre = layout.nms_pre > 0 ? std::min(layout.nms_pre, opt.pre_nms_topk) : opt.pre_nms_topk;
  so.max_det = opt.max_det;
  so.cate_logits = layout.cate_logits;
  so.gaussian = layout.gaussian;
  so.sigma = layout.sigma;
  switch (opt.nms) {
    case Suppression::kMask:
      so.nms = Solov2Nms::kMask;
      break;
    case Suppression::kFast:
      so.nms = Solov2Nms::kFast;
      break;
    case Suppression::kBox:
      so.nms = Solov2Nms::kBox;
      break;
    default:
      so.nms = Solov2Nms::kMatrix;
  }
  so.iou = opt.iou;
  so.agnostic = opt.agnostic;
  so.mask_stride = layout.mask_stride;
  so.soft = opt.soft_masks;
  so.class_allowed = opt.class_allowed;
  const ProtoView feat = protos_of(output_at(outputs, layout.mask_feat, "mask feature"), false);
  Solov2Instances r = decode_solov2(levels, feat, lb, so);
  Instances out;
  out.boxes = std::move(r.boxes);
  out.scores = std::move(r.scores);
  out.classes = std::move(r.classes);
  out.masks = std::move(r.masks);
  return out;
}

Instances postprocess_dets(const DetsLayout& layout, const std::vector<Tensor>& outputs,
                           const Letterbox& lb, const PostprocessOptions& opt) {
  check_letterbox(lb);
  check_options(opt);
  if (layout.num_classes < 1) throw InvalidArgument("the layout's num_classes must be >= 1");
  if (!opt.class_allowed.empty() &&
      static_cast<int64_t>(opt.class_allowed.size()) != layout.num_classes)
    throw InvalidArgument("class filter must have one flag per class (" +
                          std::to_string(layout.num_classes) + ")");
  const bool mmdeploy = layout.scores < 0;
  const View2D rows = view_of(output_at(outputs, layout.boxes, "boxes"), false, "the boxes output");
  if (rows.cols != (mmdeploy ? 5 : 4))
    throw InvalidArgument(std::string("the ") + (mmdeploy ? "dets output must be [K, 5]"
                                                          : "boxes output must be [K, 4]"));
  const Tensor& labels = output_at(outputs, layout.labels, "labels");
  const Tensor* scores = mmdeploy ? nullptr : &output_at(outputs, layout.scores, "scores");
  Tensor masks_t = output_at(outputs, layout.masks, "masks");
  if (masks_t.shape.size() == 4 && masks_t.shape[1] == 1) {  // [K, 1, h, w]: drop the channel
    const auto st = strides_of(masks_t, "the masks output");
    masks_t.shape.erase(masks_t.shape.begin() + 1);
    masks_t.strides = {st[0], st[2], st[3]};
  }
  if (masks_t.shape.size() != 3)
    throw InvalidArgument(
        "the masks output of one image must be [K, h, w] (or [K, 1, h, w]), got " +
        shape_str(masks_t.shape));
  const auto mst = strides_of(masks_t, "the masks output");
  const int64_t k = rows.rows;
  const int64_t nl = labels.shape.size() == 1 ? labels.shape[0] : -1;
  const int64_t ns = scores == nullptr ? k : (scores->shape.size() == 1 ? scores->shape[0] : -1);
  if (nl != k || ns != k || masks_t.shape[0] != k)
    throw InvalidArgument(
        "the outputs hold " + std::to_string(k) + " boxes, " + shape_str(labels.shape) + " labels" +
        (scores ? ", " + shape_str(scores->shape) + " scores" : std::string()) + " and " +
        std::to_string(masks_t.shape[0]) + " masks; they must hold the same number of detections");
  if (labels.dtype == DType::kInt8 || labels.dtype == DType::kUInt8)
    throw InvalidArgument("labels must be int64, int32 or float32");
  const int64_t label_stride = strides_of(labels, "the labels output")[0];
  const int64_t score_stride = scores ? strides_of(*scores, "the scores output")[0] : 0;
  if (scores && scores->dtype != DType::kFloat32) throw InvalidArgument("scores must be float32");
  if (rows.dtype != DType::kFloat32) throw InvalidArgument("boxes must be float32");

  std::vector<int64_t> keep;
  Instances out;
  for (int64_t i = 0; i < k; ++i) {
    const float score =
        scores ? static_cast<const float*>(scores->data)[i * score_stride] : rows.at(i, 4);
    if (!(score > opt.conf)) continue;  // MMDeploy's SDK drops rows with score <= score_thr
    const float label = load(labels.data, labels.dtype, i * label_stride, labels.quant);
    const auto cls = static_cast<int64_t>(label);
    if (!(label >= 0.f && label < static_cast<float>(layout.num_classes)) ||
        static_cast<float>(cls) != label) {
      std::string shown = std::to_string(label);
      if (std::isfinite(label) && std::floor(label) == label)
        shown = std::to_string(std::llround(label));
      throw InvalidArgument("labels holds class " + shown + ", outside the model's " +
                            std::to_string(layout.num_classes) +
                            " classes (pass the model's class names)");
    }
    if (static_cast<int64_t>(keep.size()) >= opt.max_det)
      continue;  // every row checked all the same
    if (!opt.class_allowed.empty() && opt.class_allowed[static_cast<size_t>(cls)] == 0) continue;
    keep.push_back(i);
    out.scores.push_back(score);
    out.classes.push_back(static_cast<int32_t>(cls));
    for (int64_t c = 0; c < 4; ++c) out.boxes.push_back(rows.at(i, c));
  }
  const auto n = static_cast<int64_t>(keep.size());
  unletterbox_boxes(out.boxes.data(), n, lb);
  MaskStackView stack;
  stack.data = masks_t.data;
  stack.dtype = masks_t.dtype;
  stack.count = masks_t.shape[0];
  stack.height = masks_t.shape[1];
  stack.width = masks_t.shape[2];
  stack.stride_n = mst[0];
  stack.stride_y = mst[1];
  stack.stride_x = mst[2];
  PasteOptions po;
  po.convention =
      layout.torchvision_paste ? PasteConvention::kTorchvision : PasteConvention::kMMDet;
  po.threshold = opt.mask_threshold;
  po.inclusive = layout.inclusive;
  po.soft = opt.soft_masks;
  if (layout.roi_masks) {
    out.masks = paste_roi_masks(stack, keep.data(), out.boxes.data(), n, lb.src_h, lb.src_w, po);
    return out;
  }
  out.masks = crop_frame_masks(stack, keep.data(), out.boxes.data(), n, lb, po);
  // Rows without a box (SOLOv2 writes zeros) take their mask's extent, as the core cropped them.
  for (int64_t i = 0; i < n; ++i) {
    float* b = &out.boxes[static_cast<size_t>(4 * i)];
    if (b[2] > b[0] && b[3] > b[1]) continue;
    const int32_t* r = &out.masks.rects[static_cast<size_t>(4 * i)];
    b[0] = static_cast<float>(r[0]);
    b[1] = static_cast<float>(r[1]);
    b[2] = static_cast<float>(r[0] + r[2]);
    b[3] = static_cast<float>(r[1] + r[3]);
  }
  return out;
}

}  // namespace edgeseg
