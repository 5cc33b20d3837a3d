// Bindings: per-box (Mask R-CNN) and full-frame masks (edgeseg/paste.hpp).
#include <string>
#include <utility>

#include "bind_families.hpp"
#include "bind_util.hpp"
#include "edgeseg/paste.hpp"

namespace edgeseg_py {
namespace {

// A (detections, height, width) stack of float32 probabilities or uint8 / bool binary masks, as
// given (strided views are fine); `keep` holds the array while the core reads it.
edgeseg::MaskStackView mask_stack(const py::object& obj, py::array* keep) {
  if (!py::isinstance<py::array>(obj)) throw InvalidArgument("masks must be a numpy array");
  py::object arr = obj;
  if (py::reinterpret_borrow<py::array>(obj).dtype().equal(py::dtype::of<bool>()))
    arr = obj.attr("view")(py::dtype::of<uint8_t>());  // same bytes: 0 / 1
  edgeseg::MaskStackView v;
  *keep = tensor(arr, 3, "masks", &v.dtype);  // float32, int8 or uint8
  if (v.dtype == edgeseg::DType::kInt8)
    throw InvalidArgument("masks must be float32 probabilities or uint8 / bool binary masks");
  v.data = keep->data();
  v.count = keep->shape(0);
  v.height = keep->shape(1);
  v.width = keep->shape(2);
  v.stride_n = elem_stride(*keep, 0);
  v.stride_y = elem_stride(*keep, 1);
  v.stride_x = elem_stride(*keep, 2);
  return v;
}

struct Selection {
  py::array rows, boxes;
  int64_t n = 0;
};

Selection selection(const py::object& rows_obj, const py::object& boxes_obj) {
  Selection s;
  s.rows = contiguous<int64_t>(rows_obj, 1, "rows");
  s.boxes = contiguous<float>(boxes_obj, 2, "boxes");
  check_boxes(s.boxes);
  s.n = s.boxes.shape(0);
  if (s.rows.shape(0) != s.n) throw InvalidArgument("rows and boxes must have the same length");
  return s;
}

py::object paste_roi_masks(const py::object& masks_obj, const py::object& rows_obj,
                           const py::object& boxes_obj, const py::object& image_hw_obj,
                           const py::object& convention_obj, const py::object& threshold_obj,
                           const py::object& soft_obj) {
  const auto image_hw = to_hw(image_hw_obj, "image_hw");
  edgeseg::PasteOptions opt;
  const std::string convention =
      PyUnicode_Check(convention_obj.ptr()) ? std::string(py::str(convention_obj)) : "";
  if (convention == "mmdet") {
    opt.convention = edgeseg::PasteConvention::kMMDet;
  } else if (convention == "torchvision") {
    opt.convention = edgeseg::PasteConvention::kTorchvision;
  } else {
    throw InvalidArgument("convention must be 'mmdet' or 'torchvision', got " +
                          describe(convention_obj));
  }
  opt.threshold = to_float(threshold_obj, "threshold");
  opt.soft = to_bool(soft_obj, "soft");
  py::array keep;
  const auto view = mask_stack(masks_obj, &keep);
  const Selection s = selection(rows_obj, boxes_obj);
  edgeseg::Masks m;
  {
    py::gil_scoped_release release;
    m = edgeseg::paste_roi_masks(view, static_cast<const int64_t*>(s.rows.data()),
                                 static_cast<const float*>(s.boxes.data()), s.n, image_hw.first,
                                 image_hw.second, opt);
  }
  return masks_to_python(std::move(m), opt.soft);
}

py::object crop_frame_masks(const py::object& masks_obj, const py::object& rows_obj,
                            const py::object& boxes_obj, const py::object& lb_obj,
                            const py::object& threshold_obj, const py::object& inclusive_obj,
                            const py::object& soft_obj) {
  const auto& lb = to_letterbox(lb_obj);
  edgeseg::PasteOptions opt;
  opt.threshold = to_float(threshold_obj, "threshold");
  opt.inclusive = to_bool(inclusive_obj, "inclusive");
  opt.soft = to_bool(soft_obj, "soft");
  py::array keep;
  const auto view = mask_stack(masks_obj, &keep);
  const Selection s = selection(rows_obj, boxes_obj);
  edgeseg::Masks m;
  {
    py::gil_scoped_release release;
    m = edgeseg::crop_frame_masks(view, static_cast<const int64_t*>(s.rows.data()),
                                  static_cast<const float*>(s.boxes.data()), s.n, lb, opt);
  }
  return masks_to_python(std::move(m), opt.soft);
}

}  // namespace

void bind_instance_masks(py::module_& m) {
  m.def("paste_roi_masks", &paste_roi_masks, py::arg("masks"), py::arg("rows"), py::arg("boxes"),
        py::arg("image_hw"), py::arg("convention") = "mmdet", py::arg("threshold") = 0.5f,
        py::arg("soft") = false,
        "Pastes RoI masks[rows] (N, M, M probabilities) into boxes (N, 4, source pixels) as a "
        "MaskSet of box-cropped bit-packed crops, in the 'mmdet' or 'torchvision' convention.");
  m.def("crop_frame_masks", &crop_frame_masks, py::arg("masks"), py::arg("rows"), py::arg("boxes"),
        py::arg("letterbox"), py::arg("threshold") = 0.5f, py::arg("inclusive") = true,
        py::arg("soft") = false,
        "Crops full-frame masks[rows] (model-input resolution) to boxes (N, 4, source pixels; "
        "an empty box takes its mask's extent) as a MaskSet of bit-packed crops.");
}

}  // namespace edgeseg_py
