// Bindings: split YOLO heads for NPUs (edgeseg/split.hpp).
#include <string>
#include <utility>
#include <vector>

#include "bind_families.hpp"
#include "bind_util.hpp"
#include "edgeseg/split.hpp"

namespace edgeseg_py {
namespace {

// One level from a dict: boxes, scores, coefficients (2-D channels x cells views), optional
// score_sum, grid_hw, stride, and an optional <name>_quant for each tensor.
edgeseg::SplitLevel to_level(const py::handle& obj, size_t i, std::vector<py::array>* keep) {
  if (!py::isinstance<py::dict>(obj))
    throw InvalidArgument("level " + std::to_string(i) + " must be a dict, got " + describe(obj));
  const auto d = py::reinterpret_borrow<py::dict>(obj);
  const auto get = [&](const char* key) -> py::object {
    return d.contains(key) ? py::object(d[key]) : py::object(py::none());
  };
  const auto view = [&](const char* key, const std::string& what) {
    py::object arr = get(key);
    if (arr.is_none()) throw InvalidArgument("level " + std::to_string(i) + " has no " + key);
    py::array hold;
    auto v = view2d(arr, get((std::string(key) + "_quant").c_str()),
                    (what + " of level " + std::to_string(i)).c_str(), &hold);
    keep->push_back(std::move(hold));
    return v;
  };
  edgeseg::SplitLevel lv;
  lv.boxes = view("boxes", "boxes");
  lv.scores = view("scores", "scores");
  lv.coeffs = view("coefficients", "coefficients");
  if (!get("score_sum").is_none()) lv.score_sum = view("score_sum", "score sum");
  const auto hw = to_hw(get("grid_hw"), "grid_hw");
  lv.grid_h = hw.first;
  lv.grid_w = hw.second;
  lv.stride = to_float(get("stride"), "stride");
  return lv;
}

// Levels from a sequence of dicts (`to`), then `decode(levels, num_classes, opt)` without the GIL.
template <typename Level, typename To, typename Decode>
py::object decode_levels(const py::object& levels_obj, const py::object& num_classes_obj,
                         const py::object& conf, const py::object& iou, const py::object& max_det,
                         const py::object& pre_nms_topk, const py::object& agnostic,
                         const py::object& class_allowed, To&& to, Decode&& decode) {
  if (!py::isinstance<py::sequence>(levels_obj) || py::isinstance<py::str>(levels_obj))
    throw InvalidArgument("levels must be a sequence of dicts, got " + describe(levels_obj));
  std::vector<py::array> keep;
  std::vector<Level> levels;
  size_t i = 0;
  for (const auto& item : py::reinterpret_borrow<py::sequence>(levels_obj))
    levels.push_back(to(item, i++, &keep));
  const int64_t num_classes = to_int64(num_classes_obj, "num_classes");
  auto opt = decode_options(conf, max_det, class_allowed, py::make_tuple(1.f, 1.f));
  opt.iou = to_float(iou, "iou");
  opt.pre_nms_topk = to_int64(pre_nms_topk, "pre_nms_topk");
  opt.agnostic = to_bool(agnostic, "agnostic");
  edgeseg::Detections d;
  {
    py::gil_scoped_release release;
    d = decode(levels, num_classes, opt);
  }
  return detections_to_python(std::move(d));
}

py::object decode_yolo_split(const py::object& levels_obj, const py::object& num_classes_obj,
                             const py::object& conf, const py::object& iou,
                             const py::object& max_det, const py::object& pre_nms_topk,
                             const py::object& agnostic, const py::object& class_allowed) {
  return decode_levels<edgeseg::SplitLevel>(levels_obj, num_classes_obj, conf, iou, max_det,
                                            pre_nms_topk, agnostic, class_allowed, to_level,
                                            edgeseg::decode_yolo_split);
}

// One level of an anchor-based split head from a dict: preds, coefficients (2-D channels x cells
// views), grid_hw, stride, anchors ((w, h) pairs), and an optional <name>_quant for each tensor.
edgeseg::AnchorLevel to_anchor_level(const py::handle& obj, size_t i,
                                     std::vector<py::array>* keep) {
  const std::string at = " of level " + std::to_string(i);
  if (!py::isinstance<py::dict>(obj))
    throw InvalidArgument("level " + std::to_string(i) + " must be a dict, got " + describe(obj));
  const auto d = py::reinterpret_borrow<py::dict>(obj);
  const auto get = [&](const char* key) -> py::object {
    return d.contains(key) ? py::object(d[key]) : py::object(py::none());
  };
  const auto view = [&](const char* key, const std::string& what) {
    py::object arr = get(key);
    if (arr.is_none()) throw InvalidArgument("level " + std::to_string(i) + " has no " + key);
    py::array hold;
    auto v = view2d(arr, get((std::string(key) + "_quant").c_str()), (what + at).c_str(), &hold);
    keep->push_back(std::move(hold));
    return v;
  };
  edgeseg::AnchorLevel lv;
  lv.preds = view("preds", "predictions");
  lv.coeffs = view("coefficients", "coefficients");
  const auto hw = to_hw(get("grid_hw"), "grid_hw");
  lv.grid_h = hw.first;
  lv.grid_w = hw.second;
  lv.stride = to_float(get("stride"), "stride");
  const py::object anchors = get("anchors");
  if (!py::isinstance<py::sequence>(anchors) || py::isinstance<py::str>(anchors))
    throw InvalidArgument("anchors" + at + " must be a sequence of (w, h) pairs, got " +
                          describe(anchors));
  for (const auto& pair : py::reinterpret_borrow<py::sequence>(anchors)) {
    const auto wh = to_pair(pair, "anchors" + at, "(w, h)");
    lv.anchors.push_back(to_float(wh.first, "anchor width" + at));
    lv.anchors.push_back(to_float(wh.second, "anchor height" + at));
  }
  return lv;
}

py::object decode_yolov5_split(const py::object& levels_obj, const py::object& num_classes_obj,
                               const py::object& conf, const py::object& iou,
                               const py::object& max_det, const py::object& pre_nms_topk,
                               const py::object& agnostic, const py::object& class_allowed) {
  return decode_levels<edgeseg::AnchorLevel>(levels_obj, num_classes_obj, conf, iou, max_det,
                                             pre_nms_topk, agnostic, class_allowed, to_anchor_level,
                                             edgeseg::decode_yolov5_split);
}

py::object decode_yolo_scored(const py::object& boxes_obj, const py::object& scores_obj,
                              const py::object& classes_obj, const py::object& coeffs_obj,
                              const py::object& num_classes_obj, const py::object& conf,
                              const py::object& iou, const py::object& max_det,
                              const py::object& pre_nms_topk, const py::object& agnostic,
                              const py::object& class_allowed, const py::object& boxes_quant,
                              const py::object& scores_quant, const py::object& coeffs_quant,
                              const py::object& box_scale) {
  py::array kb, ks, kc;
  const auto boxes = view2d(boxes_obj, boxes_quant, "boxes", &kb);
  edgeseg::DType sdt;
  py::array s1 = tensor(scores_obj, 1, "scores", &sdt);
  const auto scores = view2d(s1.attr("reshape")(s1.shape(0), 1), scores_quant, "scores", &ks);
  const auto coeffs = view2d(coeffs_obj, coeffs_quant, "coefficients", &kc);
  py::array classes = contiguous<int32_t>(classes_obj, 1, "class_ids");
  if (classes.shape(0) != boxes.rows)
    throw InvalidArgument("class_ids has " + std::to_string(classes.shape(0)) +
                          " values; expected one per box (" + std::to_string(boxes.rows) + ")");
  const int64_t num_classes = to_int64(num_classes_obj, "num_classes");
  auto opt = decode_options(conf, max_det, class_allowed, box_scale);
  opt.iou = to_float(iou, "iou");
  opt.pre_nms_topk = to_int64(pre_nms_topk, "pre_nms_topk");
  opt.agnostic = to_bool(agnostic, "agnostic");
  const auto* cls = static_cast<const int32_t*>(classes.data());
  edgeseg::Detections d;
  {
    py::gil_scoped_release release;
    d = edgeseg::decode_yolo_scored(boxes, scores, cls, coeffs, num_classes, opt);
  }
  return detections_to_python(std::move(d));
}

}  // namespace

void bind_split(py::module_& m) {
  m.def("decode_yolo_split", &decode_yolo_split, py::arg("levels"), py::arg("num_classes"),
        py::arg("conf"), py::arg("iou"), py::arg("max_det"), py::arg("pre_nms_topk"),
        py::arg("agnostic"), py::arg("class_allowed") = py::none());
  m.def("decode_yolov5_split", &decode_yolov5_split, py::arg("levels"), py::arg("num_classes"),
        py::arg("conf"), py::arg("iou"), py::arg("max_det"), py::arg("pre_nms_topk"),
        py::arg("agnostic"), py::arg("class_allowed") = py::none());
  m.def("decode_yolo_scored", &decode_yolo_scored, py::arg("boxes"), py::arg("scores"),
        py::arg("class_ids"), py::arg("coefficients"), py::arg("num_classes"), py::arg("conf"),
        py::arg("iou"), py::arg("max_det"), py::arg("pre_nms_topk"), py::arg("agnostic"),
        py::arg("class_allowed") = py::none(), py::arg("boxes_quant") = py::none(),
        py::arg("scores_quant") = py::none(), py::arg("coefficients_quant") = py::none(),
        py::arg("box_scale") = py::make_tuple(1.f, 1.f));
}

}  // namespace edgeseg_py
