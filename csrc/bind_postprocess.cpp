// Bindings of the whole postprocess (postprocess.hpp): the YOLO layout, its parser of output shapes
// and metadata, postprocess_yolo and finish_yolo. The Python YOLO heads call these, so the
// instances Python returns are the ones the C++ API returns.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bind_families.hpp"
#include "bind_util.hpp"
#include "edgeseg/postprocess.hpp"

using namespace edgeseg_py;  // NOLINT: the shared conversions

namespace {

const char* head_name(edgeseg::YoloHead h) {
  switch (h) {
    case edgeseg::YoloHead::kEndToEnd:
      return "e2e";
    case edgeseg::YoloHead::kObjectness:
      return "objectness";
    default:
      return "raw";
  }
}

edgeseg::YoloHead to_head(const std::string& name) {
  if (name == "raw") return edgeseg::YoloHead::kRaw;
  if (name == "e2e") return edgeseg::YoloHead::kEndToEnd;
  if (name == "objectness") return edgeseg::YoloHead::kObjectness;
  throw InvalidArgument("head must be 'raw', 'e2e' or 'objectness', got '" + name + "'");
}

// SplitLayout kinds by their Python names.
constexpr std::pair<const char*, edgeseg::SplitLayout::Kind> kSplitKinds[] = {
    {"dfl", edgeseg::SplitLayout::Kind::kDfl},
    {"anchors", edgeseg::SplitLayout::Kind::kAnchors},
    {"scored", edgeseg::SplitLayout::Kind::kScored},
    {"two_way", edgeseg::SplitLayout::Kind::kTwoWay}};

edgeseg::SplitLayout::Kind to_split_kind(const std::string& name) {
  for (const auto& [n, k] : kSplitKinds)
    if (name == n) return k;
  throw InvalidArgument("kind must be 'dfl', 'anchors', 'scored' or 'two_way', got '" + name + "'");
}

const char* split_kind_name(edgeseg::SplitLayout::Kind kind) {
  for (const auto& [n, k] : kSplitKinds)
    if (kind == k) return n;
  return "dfl";
}

edgeseg::Suppression to_suppression(const py::handle& obj) {
  const std::string name = PyUnicode_Check(obj.ptr()) ? std::string(py::str(obj)) : "";
  if (name == "box") return edgeseg::Suppression::kBox;
  if (name == "fast") return edgeseg::Suppression::kFast;
  if (name == "matrix") return edgeseg::Suppression::kMatrix;
  if (name == "mask") return edgeseg::Suppression::kMask;
  throw InvalidArgument("nms must be one of 'box', 'fast', 'matrix', 'mask', got " + describe(obj));
}

// The options of one call from any object with PostprocessOptions' attributes (edgeseg's
// dataclass, or a SimpleNamespace), so the Python side passes what it holds.
edgeseg::PostprocessOptions to_options(const py::object& o) {
  edgeseg::PostprocessOptions opt;
  opt.conf = to_float(o.attr("conf"), "conf");
  opt.iou = to_float(o.attr("iou"), "iou");
  opt.max_det = to_int64(o.attr("max_det"), "max_det");
  opt.pre_nms_topk = to_int64(o.attr("pre_nms_topk"), "pre_nms_topk");
  opt.agnostic = to_bool(o.attr("agnostic"), "agnostic");
  opt.nms = to_suppression(o.attr("nms"));
  opt.soft_masks = to_bool(o.attr("soft_masks"), "soft_masks");
  opt.mask_threshold = to_float(o.attr("mask_threshold"), "mask_threshold");
  const py::object allowed = o.attr("class_allowed");
  if (!allowed.is_none()) {
    py::array flags = contiguous<uint8_t>(allowed, 1, "class_allowed");
    const auto* p = static_cast<const uint8_t*>(flags.data());
    opt.class_allowed.assign(p, p + flags.shape(0));
  }
  return opt;
}

// One output of one image as a Tensor of any rank; `keep` holds the array the view reads.
edgeseg::Tensor to_tensor(const py::handle& obj, const py::object& quant, const std::string& name,
                          py::array* keep) {
  if (!py::isinstance<py::array>(obj)) throw InvalidArgument(name + " must be a numpy array");
  const int ndim = static_cast<int>(py::reinterpret_borrow<py::array>(obj).ndim());
  edgeseg::Tensor t;
  const auto dt = py::reinterpret_borrow<py::array>(obj).dtype();
  if (dt.equal(py::dtype::of<int64_t>())) {  // class labels (postprocess_dets)
    t.dtype = edgeseg::DType::kInt64;
    *keep = checked<int64_t>(obj, ndim, name.c_str());
  } else if (dt.equal(py::dtype::of<int32_t>())) {
    t.dtype = edgeseg::DType::kInt32;
    *keep = checked<int32_t>(obj, ndim, name.c_str());
  } else {
    *keep = tensor(obj, ndim, name.c_str(), &t.dtype);
  }
  t.data = keep->data();
  for (int i = 0; i < ndim; ++i) {
    t.shape.push_back(keep->shape(i));
    t.strides.push_back(elem_stride(*keep, i));
  }
  const bool integer = t.dtype == edgeseg::DType::kInt32 || t.dtype == edgeseg::DType::kInt64;
  if (!integer) t.quant = quant_of(t.dtype, quant, name.c_str());
  return t;
}

// One image's outputs with one quantization (or None) each; `keep` holds the arrays read.
std::vector<edgeseg::Tensor> to_tensors(const py::sequence& outputs, const py::sequence& quants,
                                        std::vector<py::array>* keep) {
  if (py::len(quants) != py::len(outputs))
    throw InvalidArgument(
        "give one quantization (or None) per output: " + std::to_string(py::len(outputs)) +
        " outputs, " + std::to_string(py::len(quants)) + " quantizations");
  keep->resize(py::len(outputs));
  std::vector<edgeseg::Tensor> tensors;
  for (size_t i = 0; i < keep->size(); ++i)
    tensors.push_back(to_tensor(outputs[i], quants[i], "output " + std::to_string(i), &(*keep)[i]));
  return tensors;
}

edgeseg::ProtoView to_protos(const py::object& obj, const py::object& quant, py::array* keep) {
  edgeseg::DType dtype;
  *keep = tensor(obj, 3, "prototypes", &dtype);
  return proto_view(*keep, dtype, quant_of(dtype, quant, "prototypes"));
}

py::object instances_to_python(edgeseg::Instances&& r, bool soft) {
  const py::ssize_t n = r.size();
  return result_types().instances(
      to_numpy(std::move(r.boxes), {n, 4}), to_numpy(std::move(r.scores), {n}),
      to_numpy(std::move(r.classes), {n}), masks_to_python(std::move(r.masks), soft));
}

// Every one-call entry the same way: one image's outputs to Tensors, the options read by name, the
// core called with the GIL released, Instances handed back without copies.
template <typename Layout, edgeseg::Instances (*Postprocess)(
                               const Layout&, const std::vector<edgeseg::Tensor>&,
                               const edgeseg::Letterbox&, const edgeseg::PostprocessOptions&)>
py::object postprocess(const Layout& layout, const py::sequence& outputs,
                       const py::sequence& quants, const py::object& lb_obj,
                       const py::object& options) {
  const auto& lb = to_letterbox(lb_obj);
  const auto opt = to_options(options);
  std::vector<py::array> keep;
  const auto tensors = to_tensors(outputs, quants, &keep);
  edgeseg::Instances r;
  {
    py::gil_scoped_release release;
    r = Postprocess(layout, tensors, lb, opt);
  }
  return instances_to_python(std::move(r), opt.soft_masks);
}

py::object finish_yolo(const py::object& detections, const py::object& protos_obj,
                       const py::object& quant, const py::object& lb_obj,
                       const py::object& options) {
  const auto& lb = to_letterbox(lb_obj);
  const auto opt = to_options(options);
  if (!py::isinstance<py::tuple>(detections) || py::len(detections) != 4)
    throw InvalidArgument(
        "detections must be a Detections (boxes, scores, class_ids, coefficients)");
  const auto fields = py::reinterpret_borrow<py::tuple>(detections);
  const py::object boxes_obj = fields[0], scores_obj = fields[1], classes_obj = fields[2],
                   coeffs_obj = fields[3];
  py::array boxes = contiguous<float>(boxes_obj, 2, "boxes");
  py::array scores = contiguous<float>(scores_obj, 1, "scores");
  py::array classes = contiguous<int32_t>(classes_obj, 1, "class_ids");
  py::array coeffs = contiguous<float>(coeffs_obj, 2, "coefficients");
  py::array keep_protos;
  const auto protos = to_protos(protos_obj, quant, &keep_protos);
  edgeseg::Detections d;
  const auto* b = static_cast<const float*>(boxes.data());
  const auto* s = static_cast<const float*>(scores.data());
  const auto* c = static_cast<const int32_t*>(classes.data());
  const auto* k = static_cast<const float*>(coeffs.data());
  d.boxes.assign(b, b + boxes.size());
  d.scores.assign(s, s + scores.size());
  d.classes.assign(c, c + classes.size());
  d.coeffs.assign(k, k + coeffs.size());
  d.num_coeffs = coeffs.shape(1);
  edgeseg::Instances r;
  {
    py::gil_scoped_release release;
    r = edgeseg::finish_yolo(std::move(d), protos, lb, opt);
  }
  return instances_to_python(std::move(r), opt.soft_masks);
}

edgeseg::SplitLayout::Level to_level(const py::handle& obj, size_t i) {
  const std::string at = "level " + std::to_string(i);
  if (!py::isinstance<py::dict>(obj)) throw InvalidArgument(at + " must be a dict");
  const auto d = py::reinterpret_borrow<py::dict>(obj);
  auto index = [&](const char* key) -> int64_t {
    return d.contains(key) && !d[key].is_none() ? to_int64(d[key], at + " " + key) : -1;
  };
  edgeseg::SplitLayout::Level lv;
  lv.boxes = index("boxes");
  lv.scores = index("scores");
  lv.coeffs = index("coeffs");
  lv.score_sum = index("score_sum");
  if (!d.contains("grid") || !d.contains("stride"))
    throw InvalidArgument(at + " needs its grid (h, w) and stride");
  std::tie(lv.grid_h, lv.grid_w) = to_hw(d["grid"], "grid");
  lv.stride = to_float(d["stride"], at + " stride");
  if (d.contains("anchors"))
    for (const auto& pair : d["anchors"]) {
      const auto wh = to_pair(pair, at + " anchors", "(w, h)");
      lv.anchors.push_back(to_float(wh.first, at + " anchor width"));
      lv.anchors.push_back(to_float(wh.second, at + " anchor height"));
    }
  return lv;
}

std::vector<int64_t> to_shape(const py::handle& obj) {
  std::vector<int64_t> shape;
  for (const auto& d : obj) shape.push_back(d.is_none() ? -1 : to_int64(d, "shape"));
  return shape;
}

}  // namespace

namespace edgeseg_py {

void bind_postprocess(py::module_& m) {
  {
    auto namedtuple = py::module_::import("collections").attr("namedtuple");
    py::object instances =
        namedtuple("Instances", py::make_tuple("boxes", "scores", "class_ids", "masks"),
                   py::arg("module") = "edgeseg._core");
    instances.attr("__doc__") =
        "Instances of one image in source pixels by descending score: boxes (N, 4) x1 y1 x2 y2, "
        "scores (N,), class_ids (N,), masks (a MaskSet of N box-cropped bit-packed masks).";
    m.attr("Instances") = instances;
    result_types().instances = instances;
  }
  py::class_<edgeseg::YoloLayout>(m, "YoloLayout")
      .def(py::init([](const std::string& head, int64_t num_classes, int64_t num_coeffs,
                       int64_t detections, bool anchor_major, int64_t prototypes,
                       bool prototypes_nhwc, bool boxes_normalized) {
             edgeseg::YoloLayout l;
             l.head = to_head(head);
             l.num_classes = num_classes;
             l.num_coeffs = num_coeffs;
             l.detections = detections;
             l.anchor_major = anchor_major;
             l.prototypes = prototypes;
             l.prototypes_nhwc = prototypes_nhwc;
             l.boxes_normalized = boxes_normalized;
             return l;
           }),
           py::kw_only(), py::arg("head"), py::arg("num_classes"), py::arg("num_coeffs"),
           py::arg("detections"), py::arg("anchor_major"), py::arg("prototypes"),
           py::arg("prototypes_nhwc"), py::arg("boxes_normalized"))
      .def_property_readonly("head", [](const edgeseg::YoloLayout& l) { return head_name(l.head); })
      .def_readonly("num_classes", &edgeseg::YoloLayout::num_classes)
      .def_readonly("num_coeffs", &edgeseg::YoloLayout::num_coeffs)
      .def_readonly("detections", &edgeseg::YoloLayout::detections)
      .def_readonly("anchor_major", &edgeseg::YoloLayout::anchor_major)
      .def_readonly("prototypes", &edgeseg::YoloLayout::prototypes)
      .def_readonly("prototypes_nhwc", &edgeseg::YoloLayout::prototypes_nhwc)
      .def_readonly("boxes_normalized", &edgeseg::YoloLayout::boxes_normalized)
      .def_readonly("names", &edgeseg::YoloLayout::names)
      .def("__repr__", [](const edgeseg::YoloLayout& l) {
        return std::string("YoloLayout(head=") + head_name(l.head) +
               ", num_classes=" + std::to_string(l.num_classes) +
               ", num_coeffs=" + std::to_string(l.num_coeffs) +
               ", detections=" + std::to_string(l.detections) +
               ", anchor_major=" + (l.anchor_major ? "True" : "False") +
               ", prototypes=" + std::to_string(l.prototypes) +
               ", prototypes_nhwc=" + (l.prototypes_nhwc ? "True" : "False") +
               ", boxes_normalized=" + (l.boxes_normalized ? "True" : "False") + ")";
      });
  py::class_<edgeseg::SplitLayout>(m, "SplitLayout")
      .def(py::init([](const std::string& kind, int64_t num_classes, const py::sequence& levels,
                       bool levels_nhwc, int64_t prototypes, bool prototypes_nhwc,
                       const py::object& boxes, const py::object& scores, const py::object& classes,
                       const py::object& coeffs, bool anchor_major, bool boxes_normalized) {
             edgeseg::SplitLayout l;
             l.kind = to_split_kind(kind);
             l.num_classes = num_classes;
             for (size_t i = 0; i < py::len(levels); ++i)
               l.levels.push_back(to_level(levels[i], i));
             l.levels_nhwc = levels_nhwc;
             l.prototypes = prototypes;
             l.prototypes_nhwc = prototypes_nhwc;
             auto index = [](const py::object& o, const char* name) {
               return o.is_none() ? int64_t{-1} : to_int64(o, name);
             };
             l.boxes = index(boxes, "boxes");
             l.scores = index(scores, "scores");
             l.classes = index(classes, "classes");
             l.coeffs = index(coeffs, "coeffs");
             l.anchor_major = anchor_major;
             l.boxes_normalized = boxes_normalized;
             return l;
           }),
           py::kw_only(), py::arg("kind"), py::arg("num_classes"), py::arg("levels") = py::list(),
           py::arg("levels_nhwc") = false, py::arg("prototypes"), py::arg("prototypes_nhwc"),
           py::arg("boxes") = py::none(), py::arg("scores") = py::none(),
           py::arg("classes") = py::none(), py::arg("coeffs") = py::none(),
           py::arg("anchor_major") = false, py::arg("boxes_normalized") = false)
      .def_property_readonly("kind",
                             [](const edgeseg::SplitLayout& l) {
                               return l.kind == edgeseg::SplitLayout::Kind::kDfl ? "dfl"
                                                                                 : "anchors";
                             })
      .def_readonly("num_classes", &edgeseg::SplitLayout::num_classes)
      .def_property_readonly("num_levels",
                             [](const edgeseg::SplitLayout& l) { return l.levels.size(); })
      .def_readonly("levels_nhwc", &edgeseg::SplitLayout::levels_nhwc)
      .def_readonly("prototypes", &edgeseg::SplitLayout::prototypes)
      .def_readonly("prototypes_nhwc", &edgeseg::SplitLayout::prototypes_nhwc)
      .def_property_readonly("levels",
                             [](const edgeseg::SplitLayout& l) {
                               py::list out;
                               for (const auto& lv : l.levels) {
                                 py::dict d;
                                 d["boxes"] = lv.boxes;
                                 d["scores"] = lv.scores;
                                 d["coeffs"] = lv.coeffs;
                                 d["score_sum"] = lv.score_sum;
                                 d["grid"] = py::make_tuple(lv.grid_h, lv.grid_w);
                                 d["stride"] = lv.stride;
                                 d["anchors"] = lv.anchors;
                                 out.append(d);
                               }
                               return out;
                             })
      .def_readonly("boxes", &edgeseg::SplitLayout::boxes)
      .def_readonly("scores", &edgeseg::SplitLayout::scores)
      .def_readonly("classes", &edgeseg::SplitLayout::classes)
      .def_readonly("coeffs", &edgeseg::SplitLayout::coeffs)
      .def_readonly("anchor_major", &edgeseg::SplitLayout::anchor_major)
      .def_readonly("boxes_normalized", &edgeseg::SplitLayout::boxes_normalized);
  py::class_<edgeseg::YolactLayout>(m, "YolactLayout")
      .def(py::init([](int64_t boxes, bool boxes_decoded, int64_t conf, int64_t coeffs,
                       int64_t prototypes, const py::object& priors_output,
                       const py::object& priors, bool prototypes_nhwc, int64_t top_k) {
             edgeseg::YolactLayout l;
             l.boxes = boxes;
             l.boxes_decoded = boxes_decoded;
             l.conf = conf;
             l.coeffs = coeffs;
             l.prototypes = prototypes;
             l.priors_output =
                 priors_output.is_none() ? -1 : to_int64(priors_output, "priors_output");
             if (!priors.is_none()) {
               py::array a = contiguous<float>(priors, 2, "priors");
               if (a.shape(1) != 4) throw InvalidArgument("priors must have shape (N, 4)");
               const auto* p = static_cast<const float*>(a.data());
               l.priors.assign(p, p + a.size());
             }
             l.prototypes_nhwc = prototypes_nhwc;
             l.top_k = top_k;
             return l;
           }),
           py::kw_only(), py::arg("boxes"), py::arg("boxes_decoded"), py::arg("conf"),
           py::arg("coeffs"), py::arg("prototypes"), py::arg("priors_output") = py::none(),
           py::arg("priors") = py::none(), py::arg("prototypes_nhwc") = true,
           py::arg("top_k") = 200)
      .def_readonly("boxes", &edgeseg::YolactLayout::boxes)
      .def_readonly("boxes_decoded", &edgeseg::YolactLayout::boxes_decoded)
      .def_readonly("conf", &edgeseg::YolactLayout::conf)
      .def_readonly("coeffs", &edgeseg::YolactLayout::coeffs)
      .def_readonly("prototypes", &edgeseg::YolactLayout::prototypes)
      .def_readonly("priors_output", &edgeseg::YolactLayout::priors_output)
      .def_readonly("prototypes_nhwc", &edgeseg::YolactLayout::prototypes_nhwc)
      .def_readonly("top_k", &edgeseg::YolactLayout::top_k)
      .def_property_readonly("num_priors",
                             [](const edgeseg::YolactLayout& l) { return l.priors.size() / 4; });
  m.def("postprocess_yolact", &postprocess<edgeseg::YolactLayout, edgeseg::postprocess_yolact>,
        py::arg("layout"), py::arg("outputs"), py::arg("quants"), py::arg("letterbox"),
        py::arg("options"),
        "The whole postprocess of one image of a YOLACT export (per-prior outputs without their "
        "batch dimension; a priors output as the model returns it).");
  py::class_<edgeseg::RtmdetLayout>(m, "RtmdetLayout")
      .def(py::init([](std::vector<int64_t> cls, std::vector<int64_t> box,
                       std::vector<int64_t> kernel, std::vector<int64_t> strides, int64_t mask_feat,
                       int64_t dyconv_channels, int64_t num_dyconvs) {
             edgeseg::RtmdetLayout l;
             l.cls = std::move(cls);
             l.box = std::move(box);
             l.kernel = std::move(kernel);
             l.strides = std::move(strides);
             l.mask_feat = mask_feat;
             l.dyconv_channels = dyconv_channels;
             l.num_dyconvs = num_dyconvs;
             return l;
           }),
           py::kw_only(), py::arg("cls"), py::arg("box"), py::arg("kernel"), py::arg("strides"),
           py::arg("mask_feat"), py::arg("dyconv_channels") = 8, py::arg("num_dyconvs") = 3)
      .def_readonly("cls", &edgeseg::RtmdetLayout::cls)
      .def_readonly("box", &edgeseg::RtmdetLayout::box)
      .def_readonly("kernel", &edgeseg::RtmdetLayout::kernel)
      .def_readonly("strides", &edgeseg::RtmdetLayout::strides)
      .def_readonly("mask_feat", &edgeseg::RtmdetLayout::mask_feat)
      .def_readonly("dyconv_channels", &edgeseg::RtmdetLayout::dyconv_channels)
      .def_readonly("num_dyconvs", &edgeseg::RtmdetLayout::num_dyconvs);
  m.def("postprocess_rtmdet", &postprocess<edgeseg::RtmdetLayout, edgeseg::postprocess_rtmdet>,
        py::arg("layout"), py::arg("outputs"), py::arg("quants"), py::arg("letterbox"),
        py::arg("options"),
        "The whole postprocess of one image of a raw RTMDet-Ins export (float32 outputs without "
        "their batch dimension; nms 'box').");
  py::class_<edgeseg::Solov2Layout>(m, "Solov2Layout")
      .def(py::init([](bool flat, std::vector<int64_t> cate, std::vector<int64_t> kernel,
                       int64_t mask_feat, std::vector<int64_t> grids, std::vector<int64_t> strides,
                       bool cate_logits, int64_t mask_stride, int64_t nms_pre, float filter_thr,
                       const std::string& kernel_kind, float sigma) {
             if (kernel_kind != "gaussian" && kernel_kind != "linear")
               throw InvalidArgument("matrix_kernel must be 'gaussian' or 'linear', got '" +
                                     kernel_kind + "'");
             edgeseg::Solov2Layout l;
             l.flat = flat;
             l.cate = std::move(cate);
             l.kernel = std::move(kernel);
             l.mask_feat = mask_feat;
             l.grids = std::move(grids);
             l.strides = std::move(strides);
             l.cate_logits = cate_logits;
             l.mask_stride = mask_stride;
             l.nms_pre = nms_pre;
             l.filter_thr = filter_thr;
             l.gaussian = kernel_kind == "gaussian";
             l.sigma = sigma;
             return l;
           }),
           py::kw_only(), py::arg("flat"), py::arg("cate"), py::arg("kernel"), py::arg("mask_feat"),
           py::arg("grids"), py::arg("strides"), py::arg("cate_logits") = true,
           py::arg("mask_stride") = 4, py::arg("nms_pre") = 500, py::arg("filter_thr") = 0.05f,
           py::arg("matrix_kernel") = "gaussian", py::arg("sigma") = 2.f)
      .def_readonly("flat", &edgeseg::Solov2Layout::flat)
      .def_readonly("cate", &edgeseg::Solov2Layout::cate)
      .def_readonly("kernel", &edgeseg::Solov2Layout::kernel)
      .def_readonly("mask_feat", &edgeseg::Solov2Layout::mask_feat)
      .def_readonly("grids", &edgeseg::Solov2Layout::grids)
      .def_readonly("strides", &edgeseg::Solov2Layout::strides)
      .def_readonly("cate_logits", &edgeseg::Solov2Layout::cate_logits)
      .def_readonly("mask_stride", &edgeseg::Solov2Layout::mask_stride)
      .def_readonly("nms_pre", &edgeseg::Solov2Layout::nms_pre)
      .def_readonly("filter_thr", &edgeseg::Solov2Layout::filter_thr)
      .def_readonly("gaussian", &edgeseg::Solov2Layout::gaussian)
      .def_readonly("sigma", &edgeseg::Solov2Layout::sigma);
  m.def("postprocess_solov2", &postprocess<edgeseg::Solov2Layout, edgeseg::postprocess_solov2>,
        py::arg("layout"), py::arg("outputs"), py::arg("quants"), py::arg("letterbox"),
        py::arg("options"),
        "The whole postprocess of one image of a SOLOv2 export (outputs without their batch "
        "dimension).");
  py::class_<edgeseg::DetsLayout>(m, "DetsLayout")
      .def(py::init([](int64_t boxes, const py::object& scores, int64_t labels, int64_t masks,
                       bool roi_masks, const std::string& convention, bool inclusive,
                       int64_t num_classes) {
             if (convention != "mmdet" && convention != "torchvision")
               throw InvalidArgument("convention must be 'mmdet' or 'torchvision', got '" +
                                     convention + "'");
             edgeseg::DetsLayout l;
             l.boxes = boxes;
             l.scores = scores.is_none() ? -1 : to_int64(scores, "scores");
             l.labels = labels;
             l.masks = masks;
             l.roi_masks = roi_masks;
             l.torchvision_paste = convention == "torchvision";
             l.inclusive = inclusive;
             l.num_classes = num_classes;
             return l;
           }),
           py::kw_only(), py::arg("boxes"), py::arg("scores"), py::arg("labels"), py::arg("masks"),
           py::arg("roi_masks"), py::arg("convention"), py::arg("inclusive"),
           py::arg("num_classes"))
      .def_readonly("boxes", &edgeseg::DetsLayout::boxes)
      .def_readonly("scores", &edgeseg::DetsLayout::scores)
      .def_readonly("labels", &edgeseg::DetsLayout::labels)
      .def_readonly("masks", &edgeseg::DetsLayout::masks)
      .def_readonly("roi_masks", &edgeseg::DetsLayout::roi_masks)
      .def_readonly("inclusive", &edgeseg::DetsLayout::inclusive)
      .def_readonly("torchvision_paste", &edgeseg::DetsLayout::torchvision_paste)
      .def_readonly("num_classes", &edgeseg::DetsLayout::num_classes);
  m.def("postprocess_dets", &postprocess<edgeseg::DetsLayout, edgeseg::postprocess_dets>,
        py::arg("layout"), py::arg("outputs"), py::arg("quants"), py::arg("letterbox"),
        py::arg("options"),
        "The whole postprocess of one image of an end-to-end dets / labels / masks export.");
  m.def("postprocess_yolo_split",
        &postprocess<edgeseg::SplitLayout, edgeseg::postprocess_yolo_split>, py::arg("layout"),
        py::arg("outputs"), py::arg("quants"), py::arg("letterbox"), py::arg("options"),
        "The whole postprocess of one image of a split head (outputs without their batch "
        "dimension, one quantization or None each).");
  m.def(
      "yolo_layout",
      [](const py::sequence& output_shapes, const py::object& input_shape,
         const std::map<std::string, std::string>& metadata) {
        std::vector<std::vector<int64_t>> shapes;
        for (const auto& s : output_shapes) shapes.push_back(to_shape(s));
        return edgeseg::yolo_layout(shapes, to_shape(input_shape), metadata);
      },
      py::arg("output_shapes"), py::arg("input_shape"), py::arg("metadata"),
      "The YOLO layout from output shapes (None where dynamic), the input shape and metadata, as "
      "the C++ API decides it.");
  m.def("parse_names", &edgeseg::parse_names, py::arg("value"),
        "Class names of an Ultralytics `names` metadata value.");
  m.def("postprocess_yolo", &postprocess<edgeseg::YoloLayout, edgeseg::postprocess_yolo>,
        py::arg("layout"), py::arg("outputs"), py::arg("quants"), py::arg("letterbox"),
        py::arg("options"),
        "The whole postprocess of one image: outputs without their batch dimension, one "
        "quantization (scale, zero_point) or None per output, options with PostprocessOptions' "
        "attributes.");
  m.def("finish_yolo", &finish_yolo, py::arg("detections"), py::arg("prototypes"), py::arg("quant"),
        py::arg("letterbox"), py::arg("options"),
        "Suppression (unless box NMS, done by the decoder), unletterbox and masks of decoded "
        "candidates.");
}

}  // namespace edgeseg_py
