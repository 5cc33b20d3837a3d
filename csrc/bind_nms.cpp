// Bindings: Fast, Matrix and mask-IoU NMS (edgeseg/nms_variants.hpp). Same conventions as
// bindings.cpp: arguments arrive as py::object and are converted by bind_util.hpp, so bad values
// are ValueErrors naming them; the GIL is released while the core runs.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "bind_families.hpp"
#include "bind_util.hpp"
#include "edgeseg/nms_variants.hpp"

namespace edgeseg_py {
namespace {

// NmsResult(keep, scores, class_ids): made once in bind_nms_variants, kept alive by the module.
py::handle nms_result_type;

py::object to_python(edgeseg::NmsResult&& r) {
  const py::ssize_t k = static_cast<py::ssize_t>(r.keep.size());
  return nms_result_type(to_numpy(std::move(r.keep), {k}), to_numpy(std::move(r.scores), {k}),
                         to_numpy(std::move(r.classes), {k}));
}

// Scores (n,) and optional class ids (n,) of n candidates; the arrays stay alive in `keep_*`.
struct ScoreArgs {
  // A default py::array is an empty float64 array, not a null handle: `has_classes` says.
  py::array scores, classes;
  bool has_classes = false;
  const float* s() const { return static_cast<const float*>(scores.data()); }
  const int32_t* c() const {
    return has_classes ? static_cast<const int32_t*>(classes.data()) : nullptr;
  }
};

ScoreArgs score_args(const py::object& scores_obj, const py::object& classes_obj, int64_t n,
                     const char* what) {
  ScoreArgs a;
  a.scores = contiguous<float>(scores_obj, 1, "scores");
  if (a.scores.shape(0) != n)
    throw InvalidArgument(std::string("scores must have one entry per ") + what + " (" +
                          std::to_string(n) + "), got shape " +
                          std::string(py::str(a.scores.attr("shape"))));
  if (!classes_obj.is_none()) {
    a.classes = contiguous<int32_t>(classes_obj, 1, "class_ids");
    a.has_classes = true;
    if (a.classes.shape(0) != n)
      throw InvalidArgument(std::string("class_ids must have one entry per ") + what + " (" +
                            std::to_string(n) + "), got shape " +
                            std::string(py::str(a.classes.attr("shape"))));
  }
  return a;
}

edgeseg::MatrixNmsOptions matrix_options(const py::object& kernel, const py::object& sigma,
                                         const py::object& pre_topk, const py::object& max_det,
                                         const py::object& filter_thr, const py::object& agnostic) {
  edgeseg::MatrixNmsOptions o;
  const std::string k = PyUnicode_Check(kernel.ptr()) ? std::string(py::str(kernel)) : "";
  if (k == "gaussian")
    o.kernel = edgeseg::MatrixKernel::kGaussian;
  else if (k == "linear")
    o.kernel = edgeseg::MatrixKernel::kLinear;
  else
    throw InvalidArgument("kernel must be 'gaussian' or 'linear', got " + describe(kernel));
  o.sigma = to_float(sigma, "sigma");
  o.pre_topk = to_int64(pre_topk, "pre_topk");
  o.max_det = to_int64(max_det, "max_det");
  o.filter_thr = to_float(filter_thr, "filter_thr");
  o.agnostic = to_bool(agnostic, "agnostic");
  return o;
}

py::object fast_nms(const py::object& boxes_obj, const py::object& scores_obj,
                    const py::object& classes_obj, const py::object& iou, const py::object& top_k,
                    const py::object& max_det, const py::object& agnostic, const py::object& conf) {
  edgeseg::FastNmsOptions o;
  o.iou = to_float(iou, "iou");
  o.top_k = to_int64(top_k, "top_k");
  o.max_det = to_int64(max_det, "max_det");
  o.agnostic = to_bool(agnostic, "agnostic");
  if (!conf.is_none()) {
    o.conf = to_float(conf, "conf");
    if (!(o.conf >= 0.f && o.conf <= 1.f))
      throw InvalidArgument("conf must be in [0, 1] or None, got " + describe(conf));
  }
  py::array boxes = contiguous<float>(boxes_obj, 2, "boxes");
  check_boxes(boxes);
  const int64_t n = boxes.shape(0);
  py::array scores;
  ScoreArgs per_box;
  edgeseg::ScoredBoxes c;
  c.n = n;
  if (py::isinstance<py::array>(scores_obj) &&
      py::reinterpret_borrow<py::array>(scores_obj).ndim() == 2) {
    scores = contiguous<float>(scores_obj, 2, "scores");
    if (scores.shape(0) != n || scores.shape(1) < 1)
      throw InvalidArgument("a score matrix must have shape (N, C) for N = " + std::to_string(n) +
                            " boxes and C >= 1 classes, got " +
                            std::string(py::str(scores.attr("shape"))));
    if (!classes_obj.is_none())
      throw InvalidArgument(
          "class_ids must be None with a score matrix (N, C): its columns are "
          "the classes");
    c.num_classes = scores.shape(1);
  } else {
    per_box = score_args(scores_obj, classes_obj, n, "box");
    scores = per_box.scores;
  }
  c.boxes = static_cast<const float*>(boxes.data());
  c.scores = static_cast<const float*>(scores.data());
  c.classes = per_box.c();
  edgeseg::NmsResult r;
  {
    py::gil_scoped_release release;
    r = edgeseg::fast_nms(c, o);
  }
  return to_python(std::move(r));
}

py::object matrix_nms(const py::object& boxes_obj, const py::object& scores_obj,
                      const py::object& classes_obj, const py::object& kernel,
                      const py::object& sigma, const py::object& pre_topk,
                      const py::object& max_det, const py::object& filter_thr,
                      const py::object& agnostic) {
  const auto o = matrix_options(kernel, sigma, pre_topk, max_det, filter_thr, agnostic);
  py::array boxes = contiguous<float>(boxes_obj, 2, "boxes");
  check_boxes(boxes);
  const int64_t n = boxes.shape(0);
  ScoreArgs a = score_args(scores_obj, classes_obj, n, "box");
  const auto* b = static_cast<const float*>(boxes.data());
  edgeseg::NmsResult r;
  {
    py::gil_scoped_release release;
    r = edgeseg::matrix_nms(b, a.s(), a.c(), n, o);
  }
  return to_python(std::move(r));
}

py::object mask_matrix_nms(const py::object& rects, const py::object& offsets,
                           const py::object& bits, const py::object& scores_obj,
                           const py::object& classes_obj, const py::object& kernel,
                           const py::object& sigma, const py::object& pre_topk,
                           const py::object& max_det, const py::object& filter_thr,
                           const py::object& agnostic) {
  const auto o = matrix_options(kernel, sigma, pre_topk, max_det, filter_thr, agnostic);
  CropArgs crops = crop_args(rects, offsets, bits, -1, "masks");
  const auto n = static_cast<int64_t>(crops.rects.size() / 4);
  ScoreArgs a = score_args(scores_obj, classes_obj, n, "mask");
  const edgeseg::MaskCrops mc = crops.crops();
  edgeseg::NmsResult r;
  {
    py::gil_scoped_release release;
    r = edgeseg::mask_matrix_nms(mc, a.s(), a.c(), n, o);
  }
  return to_python(std::move(r));
}

py::object mask_nms(const py::object& rects, const py::object& offsets, const py::object& bits,
                    const py::object& scores_obj, const py::object& classes_obj,
                    const py::object& iou_obj, const py::object& max_det_obj,
                    const py::object& agnostic_obj) {
  const float iou = to_float(iou_obj, "iou");
  const int64_t max_det = to_int64(max_det_obj, "max_det");
  const bool agnostic = to_bool(agnostic_obj, "agnostic");
  CropArgs crops = crop_args(rects, offsets, bits, -1, "masks");
  const auto n = static_cast<int64_t>(crops.rects.size() / 4);
  ScoreArgs a = score_args(scores_obj, classes_obj, n, "mask");
  const edgeseg::MaskCrops mc = crops.crops();
  edgeseg::NmsResult r;
  {
    py::gil_scoped_release release;
    r = edgeseg::mask_nms(mc, a.s(), a.c(), n, iou, max_det, agnostic);
  }
  return to_python(std::move(r));
}

py::array_t<float> pairwise_mask_iou(const py::object& rects, const py::object& offsets,
                                     const py::object& bits) {
  CropArgs crops = crop_args(rects, offsets, bits, -1, "masks");
  const auto n = static_cast<int64_t>(crops.rects.size() / 4);
  const edgeseg::MaskCrops mc = crops.crops();
  std::vector<float> out;
  {
    py::gil_scoped_release release;
    out = edgeseg::pairwise_mask_iou(mc, n);
  }
  return to_numpy(std::move(out), {static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(n)});
}

}  // namespace

void bind_nms_variants(py::module_& m) {
  auto namedtuple = py::module_::import("collections").attr("namedtuple");
  py::object result = namedtuple("NmsResult", py::make_tuple("keep", "scores", "class_ids"),
                                 py::arg("module") = "edgeseg._core");
  result.attr("__doc__") =
      "Candidates kept by an NMS variant, best first: keep (K,) int64 indices into the input, "
      "scores (K,) float32 (Matrix NMS: decayed), class_ids (K,) int32.";
  m.attr("NmsResult") = result;
  nms_result_type = result;  // borrowed: the module's attribute keeps it alive

  m.def("fast_nms", &fast_nms, py::arg("boxes"), py::arg("scores"),
        py::arg("class_ids") = py::none(), py::arg("iou") = 0.5f, py::arg("top_k") = 200,
        py::arg("max_det") = 100, py::arg("agnostic") = false, py::arg("conf") = py::none(),
        "YOLACT's Fast NMS over boxes (N, 4) with scores (N,) + class_ids, or a score matrix "
        "(N, C) whose columns are separate candidate sets.");
  m.def("matrix_nms", &matrix_nms, py::arg("boxes"), py::arg("scores"),
        py::arg("class_ids") = py::none(), py::arg("kernel") = "gaussian", py::arg("sigma") = 2.0f,
        py::arg("pre_topk") = -1, py::arg("max_det") = -1, py::arg("filter_thr") = -1.0f,
        py::arg("agnostic") = false,
        "SOLOv2's Matrix NMS (mmdet mask_matrix_nms) by box IoU: decayed scores.");
  m.def("mask_matrix_nms", &mask_matrix_nms, py::arg("rects"), py::arg("offsets"), py::arg("bits"),
        py::arg("scores"), py::arg("class_ids") = py::none(), py::arg("kernel") = "gaussian",
        py::arg("sigma") = 2.0f, py::arg("pre_topk") = -1, py::arg("max_det") = -1,
        py::arg("filter_thr") = -1.0f, py::arg("agnostic") = false,
        "SOLOv2's Matrix NMS (mmdet mask_matrix_nms) by the IoU of bit-packed masks.");
  m.def("mask_nms", &mask_nms, py::arg("rects"), py::arg("offsets"), py::arg("bits"),
        py::arg("scores"), py::arg("class_ids") = py::none(), py::arg("iou") = 0.5f,
        py::arg("max_det") = 300, py::arg("agnostic") = false,
        "Greedy NMS by the IoU of bit-packed masks (suppress when IoU > iou).");
  m.def("pairwise_mask_iou", &pairwise_mask_iou, py::arg("rects"), py::arg("offsets"),
        py::arg("bits"), "(N, N) float32 IoU of every pair of N bit-packed crops.");
}

}  // namespace edgeseg_py
