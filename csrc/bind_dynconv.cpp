// Bindings: CondInst / RTMDet-Ins dynamic mask heads (edgeseg/dynconv.hpp).
#include "bind_families.hpp"
#include "bind_util.hpp"
#include "edgeseg/dynconv.hpp"

namespace edgeseg_py {
namespace {

py::handle& point_detections_type() {
  static py::handle type;
  return type;
}

edgeseg::DynConvNet to_net(const py::object& feat_channels, const py::object& channels,
                           const py::object& layers) {
  edgeseg::DynConvNet net;
  net.feat_channels = to_int64(feat_channels, "feat_channels");
  net.channels = to_int64(channels, "dyconv_channels");
  net.num_layers = to_int64(layers, "num_dyconvs");
  return net;
}

py::list to_list(const py::object& obj, const char* name) {
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    throw InvalidArgument(std::string(name) + " must be a list of arrays, got " + describe(obj));
  return py::list(obj);
}

py::object decode_rtmdet(const py::object& cls_obj, const py::object& box_obj,
                         const py::object& param_obj, const py::object& strides_obj,
                         const py::object& conf, const py::object& iou, const py::object& max_det,
                         const py::object& nms_pre, const py::object& agnostic,
                         const py::object& class_allowed, const py::object& input_hw_obj,
                         const py::object& offset) {
  const py::list cls = to_list(cls_obj, "cls_scores"), box = to_list(box_obj, "bbox_preds"),
                 par = to_list(param_obj, "kernel_preds"),
                 strides = to_list(strides_obj, "strides");
  const size_t nl = cls.size();
  if (nl == 0 || box.size() != nl || par.size() != nl || strides.size() != nl)
    throw InvalidArgument(
        "cls_scores, bbox_preds, kernel_preds and strides need one entry per "
        "level (at least one)");
  const auto input_hw = to_hw(input_hw_obj, "input_hw");
  edgeseg::PointDecodeOptions opt;
  const auto base = decode_options(conf, max_det, class_allowed, py::make_tuple(1.f, 1.f));
  opt.conf = base.conf;
  opt.max_det = base.max_det;
  opt.class_allowed = base.class_allowed;
  opt.iou = to_float(iou, "iou");
  opt.nms_pre = to_int64(nms_pre, "nms_pre");
  opt.agnostic = to_bool(agnostic, "agnostic");
  opt.offset = to_float(offset, "offset");
  opt.clip_h = static_cast<float>(input_hw.first);
  opt.clip_w = static_cast<float>(input_hw.second);
  std::vector<py::array> keep;
  std::vector<edgeseg::PointLevel> levels(nl);
  int64_t num_classes = -1, num_params = -1;
  for (size_t l = 0; l < nl; ++l) {
    const std::string at = " of level " + std::to_string(l);
    py::array c = contiguous<float>(cls[l], 3, ("cls_scores" + at).c_str());
    py::array b = contiguous<float>(box[l], 3, ("bbox_preds" + at).c_str());
    py::array p = contiguous<float>(par[l], 3, ("kernel_preds" + at).c_str());
    const int64_t h = c.shape(1), w = c.shape(2);
    if (b.shape(0) != 4 || b.shape(1) != h || b.shape(2) != w || p.shape(1) != h || p.shape(2) != w)
      throw InvalidArgument("level " + std::to_string(l) +
                            ": bbox_preds must be (4, h, w) and kernel_preds (P, h, w) with the "
                            "h x w of cls_scores (" +
                            std::to_string(h) + "x" + std::to_string(w) + ")");
    if (l == 0) {
      num_classes = c.shape(0);
      num_params = p.shape(0);
    } else if (c.shape(0) != num_classes || p.shape(0) != num_params) {
      throw InvalidArgument("level " + std::to_string(l) +
                            ": class and kernel channel counts differ from level 0's");
    }
    levels[l].cls = static_cast<const float*>(c.data());
    levels[l].box = static_cast<const float*>(b.data());
    levels[l].params = static_cast<const float*>(p.data());
    levels[l].h = h;
    levels[l].w = w;
    levels[l].stride = to_int64(strides[l], "stride");
    keep.insert(keep.end(), {c, b, p});
  }
  edgeseg::PointDetections d;
  {
    py::gil_scoped_release release;
    d = edgeseg::decode_points(levels, num_classes, num_params, opt);
  }
  const py::ssize_t n = d.size(), np = d.num_params;
  return point_detections_type()(
      to_numpy(std::move(d.boxes), {n, 4}), to_numpy(std::move(d.scores), {n}),
      to_numpy(std::move(d.classes), {n}), to_numpy(std::move(d.params), {n, np}),
      to_numpy(std::move(d.priors), {n, 3}));
}

py::object dynamic_masks(const py::object& feat_obj, const py::object& params_obj,
                         const py::object& priors_obj, const py::object& boxes_obj,
                         const py::object& letterbox, const py::object& feat_stride,
                         const py::object& dyconv_channels, const py::object& num_dyconvs,
                         const py::object& coord_offset, const py::object& coord_scale,
                         const py::object& mask_threshold, const py::object& soft_obj,
                         const py::object& drop_empty) {
  const edgeseg::Letterbox lb = to_letterbox(letterbox);
  py::array feat = checked<float>(feat_obj, 3, "mask_feat");
  edgeseg::DynMaskOptions opt;
  opt.net = to_net(py::int_(feat.shape(0)), dyconv_channels, num_dyconvs);
  opt.feat_stride = to_int64(feat_stride, "feat_stride");
  opt.coord_offset = to_float(coord_offset, "coord_offset");
  opt.coord_scale = to_float(coord_scale, "coord_scale");
  opt.mask_threshold = to_float(mask_threshold, "mask_threshold");
  opt.soft = to_bool(soft_obj, "soft");
  opt.drop_empty = to_bool(drop_empty, "drop_empty");
  const int64_t np = edgeseg::dynconv_num_params(opt.net);
  py::array params = contiguous<float>(params_obj, 2, "params");
  py::array priors = contiguous<float>(priors_obj, 2, "priors");
  py::array boxes = contiguous<float>(boxes_obj, 2, "boxes");
  check_boxes(boxes);
  const int64_t n = boxes.shape(0);
  if (params.shape(0) != n || params.shape(1) != np)
    throw InvalidArgument("params must have shape (N, " + std::to_string(np) +
                          ") for N boxes and " + std::to_string(feat.shape(0)) +
                          " feature channels, got " + std::string(py::str(params.attr("shape"))));
  if (priors.shape(0) != n || priors.shape(1) != 3)
    throw InvalidArgument("priors must have shape (N, 3) for N boxes, got " +
                          std::string(py::str(priors.attr("shape"))));
  const edgeseg::ProtoView fv = proto_view(feat, edgeseg::DType::kFloat32);
  edgeseg::Masks m;
  {
    py::gil_scoped_release release;
    m = edgeseg::dynamic_masks(fv, static_cast<const float*>(params.data()),
                               static_cast<const float*>(priors.data()),
                               static_cast<const float*>(boxes.data()), n, lb, opt);
  }
  return masks_to_python(std::move(m), opt.soft);
}

int64_t dynconv_num_params(const py::object& feat_channels, const py::object& dyconv_channels,
                           const py::object& num_dyconvs) {
  return edgeseg::dynconv_num_params(to_net(feat_channels, dyconv_channels, num_dyconvs));
}

}  // namespace

void bind_dynamic_masks(py::module_& m) {
  auto namedtuple = py::module_::import("collections").attr("namedtuple");
  py::object type = namedtuple("PointDetections",
                               py::make_tuple("boxes", "scores", "class_ids", "params", "priors"),
                               py::arg("module") = "edgeseg._core");
  type.attr("__doc__") =
      "Point-prior detections in model-input pixels by descending score: boxes (N, 4) x1 y1 x2 y2, "
      "scores (N,), class_ids (N,), params (N, P) mask-network parameters, priors (N, 3) x, y, "
      "stride.";
  m.attr("PointDetections") = type;
  point_detections_type() = type;  // borrowed: the module's attribute keeps it alive
  m.def("decode_rtmdet", &decode_rtmdet, py::arg("cls_scores"), py::arg("bbox_preds"),
        py::arg("kernel_preds"), py::arg("strides"), py::arg("conf"), py::arg("iou"),
        py::arg("max_det"), py::arg("nms_pre"), py::arg("agnostic"), py::arg("class_allowed"),
        py::arg("input_hw"), py::arg("offset") = 0.f);
  m.def("dynamic_masks", &dynamic_masks, py::arg("mask_feat"), py::arg("params"), py::arg("priors"),
        py::arg("boxes"), py::arg("letterbox"), py::arg("feat_stride") = 8,
        py::arg("dyconv_channels") = 8, py::arg("num_dyconvs") = 3, py::arg("coord_offset") = 0.f,
        py::arg("coord_scale") = 8.f, py::arg("mask_threshold") = 0.5f, py::arg("soft") = false,
        py::arg("drop_empty") = true);
  m.def("dynconv_num_params", &dynconv_num_params, py::arg("feat_channels"),
        py::arg("dyconv_channels") = 8, py::arg("num_dyconvs") = 3);
}

}  // namespace edgeseg_py
