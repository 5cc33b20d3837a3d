// Bindings: YOLACT decoding (edgeseg/yolact.hpp).
#include "bind_families.hpp"
#include "bind_util.hpp"
#include "edgeseg/yolact.hpp"

namespace edgeseg_py {
namespace {

py::object decode_yolact(const py::object& boxes_obj, const py::object& conf_obj,
                         const py::object& coeffs_obj, const py::object& priors_obj,
                         const py::object& conf, const py::object& iou, const py::object& top_k,
                         const py::object& max_det, const py::object& cross_class,
                         const py::object& fast, const py::object& class_allowed,
                         const py::object& boxes_quant, const py::object& conf_quant,
                         const py::object& coeffs_quant) {
  py::array keep_boxes, keep_conf, keep_coeffs, keep_priors;
  const auto boxes = view2d(boxes_obj, boxes_quant, "boxes", &keep_boxes);
  const auto scores = view2d(conf_obj, conf_quant, "conf", &keep_conf);
  const auto coeffs = view2d(coeffs_obj, coeffs_quant, "mask coefficients", &keep_coeffs);
  edgeseg::View2D priors;
  const bool has_priors = !priors_obj.is_none();
  if (has_priors) priors = view2d(priors_obj, py::none(), "priors", &keep_priors);
  edgeseg::YolactOptions opt;
  opt.conf = to_float(conf, "conf");
  opt.iou = to_float(iou, "iou");
  opt.top_k = to_int64(top_k, "top_k");
  opt.max_det = to_int64(max_det, "max_det");
  opt.cross_class = to_bool(cross_class, "cross_class");
  opt.fast = to_bool(fast, "fast");
  if (!class_allowed.is_none()) {
    py::array flags = contiguous<uint8_t>(class_allowed, 1, "class_allowed");
    const auto* p = static_cast<const uint8_t*>(flags.data());
    opt.class_allowed.assign(p, p + flags.shape(0));
  }
  edgeseg::Detections d;
  {
    py::gil_scoped_release release;
    d = edgeseg::decode_yolact(boxes, has_priors ? &priors : nullptr, scores, coeffs, opt);
  }
  return detections_to_python(std::move(d));
}

py::object yolact_masks(const py::object& protos_obj, const py::object& coeffs_obj,
                        const py::object& boxes_obj, const py::object& image_hw_obj,
                        const py::object& soft_obj, const py::object& drop_empty_obj,
                        const py::object& quant) {
  const auto image_hw = to_hw(image_hw_obj, "image_hw");
  const bool soft = to_bool(soft_obj, "soft");
  const bool drop_empty = to_bool(drop_empty_obj, "drop_empty");
  edgeseg::DType dtype;
  py::array protos = tensor(protos_obj, 3, "prototypes", &dtype);
  py::array coeffs = contiguous<float>(coeffs_obj, 2, "coefficients");
  py::array boxes = contiguous<float>(boxes_obj, 2, "boxes");
  check_boxes(boxes);
  const int64_t n = boxes.shape(0);
  if (coeffs.shape(0) != n || coeffs.shape(1) != protos.shape(0))
    throw InvalidArgument("coefficients must have shape (N, " + std::to_string(protos.shape(0)) +
                          ") for N boxes and " + std::to_string(protos.shape(0)) +
                          " prototypes, got " + std::string(py::str(coeffs.attr("shape"))));
  const edgeseg::ProtoView pv = proto_view(protos, dtype, quant_of(dtype, quant, "prototypes"));
  edgeseg::MaskOptions opt;
  opt.soft = soft;
  opt.drop_empty = drop_empty;
  edgeseg::Masks m;
  {
    py::gil_scoped_release release;
    m = edgeseg::yolact_masks(pv, static_cast<const float*>(coeffs.data()),
                              static_cast<const float*>(boxes.data()), n, image_hw.first,
                              image_hw.second, opt);
  }
  return masks_to_python(std::move(m), soft);
}

}  // namespace

void bind_yolact(py::module_& m) {
  m.def("decode_yolact", &decode_yolact, py::arg("boxes"), py::arg("conf"), py::arg("coefficients"),
        py::arg("priors") = py::none(), py::arg("conf_threshold") = 0.05f, py::arg("iou") = 0.5f,
        py::arg("top_k") = 200, py::arg("max_det") = 100, py::arg("cross_class") = false,
        py::arg("fast") = true, py::arg("class_allowed") = py::none(),
        py::arg("boxes_quant") = py::none(), py::arg("conf_quant") = py::none(),
        py::arg("coefficients_quant") = py::none());
  m.def("yolact_masks", &yolact_masks, py::arg("prototypes"), py::arg("coefficients"),
        py::arg("boxes"), py::arg("image_hw"), py::arg("soft") = false,
        py::arg("drop_empty") = false, py::arg("quant") = py::none());
}

}  // namespace edgeseg_py
