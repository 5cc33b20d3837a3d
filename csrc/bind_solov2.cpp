// Bindings: SOLOv2 decoding.
#include "bind_families.hpp"
#include "bind_util.hpp"
#include "edgeseg/solov2.hpp"

namespace edgeseg_py {
namespace {

// Solov2Instances(boxes, scores, class_ids, masks), made once in bind_solov2 and kept alive by
// the module's attribute.
py::handle& instances_type() {
  static py::handle type;
  return type;
}

// A float32 (channels, rows, cols) array as a ProtoView (any strides).
edgeseg::ProtoView view3d(const py::handle& obj, const std::string& name, py::array* keep) {
  *keep = checked<float>(obj, 3, name.c_str());
  return proto_view(*keep, edgeseg::DType::kFloat32);
}

edgeseg::Solov2Nms to_nms(const py::handle& obj) {
  const std::string name = PyUnicode_Check(obj.ptr()) ? std::string(py::str(obj)) : "";
  if (name == "matrix") return edgeseg::Solov2Nms::kMatrix;
  if (name == "mask") return edgeseg::Solov2Nms::kMask;
  if (name == "fast") return edgeseg::Solov2Nms::kFast;
  if (name == "box") return edgeseg::Solov2Nms::kBox;
  throw InvalidArgument("nms must be 'matrix', 'mask', 'fast' or 'box', got " + describe(obj));
}

bool to_gaussian(const py::handle& obj) {
  const std::string name = PyUnicode_Check(obj.ptr()) ? std::string(py::str(obj)) : "";
  if (name == "gaussian") return true;
  if (name == "linear") return false;
  throw InvalidArgument("kernel must be 'gaussian' or 'linear', got " + describe(obj));
}

py::object decode_solov2(const py::object& cates_obj, const py::object& kernels_obj,
                         const py::object& feat_obj, const py::object& strides_obj,
                         const py::object& lb_obj, const py::object& conf,
                         const py::object& max_det, const py::object& mask_threshold,
                         const py::object& filter_thr, const py::object& nms_pre,
                         const py::object& cate_logits, const py::object& kernel,
                         const py::object& sigma, const py::object& nms, const py::object& iou,
                         const py::object& agnostic, const py::object& mask_stride,
                         const py::object& soft, const py::object& class_allowed) {
  auto as_list = [](const py::object& obj, const char* name) {
    if (!PySequence_Check(obj.ptr()) || PyUnicode_Check(obj.ptr()) ||
        py::isinstance<py::array>(obj))
      throw InvalidArgument(std::string(name) + " must be a list, got " + describe(obj));
    return py::reinterpret_borrow<py::sequence>(obj);
  };
  const py::sequence cates = as_list(cates_obj, "category_scores");
  const py::sequence kernels = as_list(kernels_obj, "kernels");
  const py::sequence strides = as_list(strides_obj, "strides");
  const size_t n = cates.size();
  if (kernels.size() != n || strides.size() != n)
    throw InvalidArgument(
        "category_scores, kernels and strides must have one entry per level, got " +
        std::to_string(n) + ", " + std::to_string(kernels.size()) + " and " +
        std::to_string(strides.size()));
  std::vector<py::array> keep(2 * n + 1);
  std::vector<edgeseg::Solov2Level> levels(n);
  for (size_t l = 0; l < n; ++l) {
    const std::string lv = "[" + std::to_string(l) + "]";
    levels[l].cate = view3d(cates[l], "category_scores" + lv, &keep[2 * l]);
    levels[l].kernel = view3d(kernels[l], "kernels" + lv, &keep[2 * l + 1]);
    levels[l].stride = to_float(strides[l], "strides" + lv);
  }
  const edgeseg::ProtoView feat = view3d(feat_obj, "mask_feature", &keep[2 * n]);
  const auto& lb = to_letterbox(lb_obj);
  edgeseg::Solov2Options opt;
  opt.score_thr = to_float(conf, "conf");
  opt.max_det = to_int64(max_det, "max_det");
  opt.mask_thr = to_float(mask_threshold, "mask_threshold");
  opt.filter_thr = to_float(filter_thr, "filter_thr");
  opt.nms_pre = to_int64(nms_pre, "nms_pre");
  opt.cate_logits = to_bool(cate_logits, "cate_logits");
  opt.gaussian = to_gaussian(kernel);
  opt.sigma = to_float(sigma, "sigma");
  opt.nms = to_nms(nms);
  opt.iou = to_float(iou, "iou");
  opt.agnostic = to_bool(agnostic, "agnostic");
  opt.mask_stride = to_int64(mask_stride, "mask_stride");
  opt.soft = to_bool(soft, "soft");
  if (!class_allowed.is_none()) {
    py::array flags = contiguous<uint8_t>(class_allowed, 1, "class_allowed");
    const auto* p = static_cast<const uint8_t*>(flags.data());
    opt.class_allowed.assign(p, p + flags.shape(0));
  }
  edgeseg::Solov2Instances r;
  {
    py::gil_scoped_release release;
    r = edgeseg::decode_solov2(levels, feat, lb, opt);
  }
  const py::ssize_t k = static_cast<py::ssize_t>(r.scores.size());
  return instances_type()(to_numpy(std::move(r.boxes), {k, 4}), to_numpy(std::move(r.scores), {k}),
                          to_numpy(std::move(r.classes), {k}),
                          masks_to_python(std::move(r.masks), opt.soft));
}

}  // namespace

void bind_solov2(py::module_& m) {
  auto namedtuple = py::module_::import("collections").attr("namedtuple");
  py::object type =
      namedtuple("Solov2Instances", py::make_tuple("boxes", "scores", "class_ids", "masks"),
                 py::arg("module") = "edgeseg._core");
  type.attr("__doc__") =
      "SOLOv2 instances by descending score: boxes (K, 4) x1 y1 x2 y2 (each mask's extent in "
      "source pixels), scores (K,), class_ids (K,), masks (a MaskSet, keep = 0..K-1).";
  m.attr("Solov2Instances") = type;
  instances_type() = type;  // borrowed: the module's attribute keeps it alive
  m.def("decode_solov2", &decode_solov2, py::arg("category_scores"), py::arg("kernels"),
        py::arg("mask_feature"), py::arg("strides"), py::arg("letterbox"), py::arg("conf") = 0.1f,
        py::arg("max_det") = 100, py::kw_only(), py::arg("mask_threshold") = 0.5f,
        py::arg("filter_thr") = 0.05f, py::arg("nms_pre") = 500, py::arg("cate_logits") = true,
        py::arg("kernel") = "gaussian", py::arg("sigma") = 2.f, py::arg("nms") = "matrix",
        py::arg("iou") = 0.5f, py::arg("agnostic") = false, py::arg("mask_stride") = 4,
        py::arg("soft") = false, py::arg("class_allowed") = py::none());
}

}  // namespace edgeseg_py
