// Python bindings: numpy arrays in, numpy arrays out (no copies of results), GIL released while
// the core runs, edgeseg::InvalidArgument raised as ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bind_families.hpp"
#include "bind_util.hpp"
#include "edgeseg/core.hpp"

using namespace edgeseg_py;  // NOLINT: the shared conversions

namespace {

py::object decode_yolo(const py::object& pred, const py::object& num_classes_obj,
                       const py::object& conf, const py::object& iou, const py::object& max_det,
                       const py::object& pre_nms_topk, const py::object& agnostic,
                       const py::object& class_allowed, const py::object& quant,
                       const py::object& box_scale, const py::object& coeffs_obj,
                       const py::object& coeffs_quant, const py::object& objectness_obj) {
  py::array keep, keep_coeffs;
  const auto v = view2d(pred, quant, "prediction", &keep);
  edgeseg::View2D coeffs;
  const bool separate = !coeffs_obj.is_none();
  if (separate) coeffs = view2d(coeffs_obj, coeffs_quant, "coefficients", &keep_coeffs);
  const int64_t num_classes = to_int64(num_classes_obj, "num_classes");
  auto opt = decode_options(conf, max_det, class_allowed, box_scale);
  opt.iou = to_float(iou, "iou");
  opt.pre_nms_topk = to_int64(pre_nms_topk, "pre_nms_topk");
  opt.agnostic = to_bool(agnostic, "agnostic");
  const bool objectness = to_bool(objectness_obj, "objectness");
  edgeseg::Detections d;
  {
    py::gil_scoped_release release;
    d = edgeseg::decode_yolo(v, num_classes, opt, separate ? &coeffs : nullptr, objectness);
  }
  return detections_to_python(std::move(d));
}

py::object decode_yolo_e2e(const py::object& rows, const py::object& num_classes_obj,
                           const py::object& conf, const py::object& max_det,
                           const py::object& class_allowed, const py::object& quant,
                           const py::object& box_scale) {
  py::array keep;
  const auto v = view2d(rows, quant, "prediction", &keep);
  const int64_t num_classes = to_int64(num_classes_obj, "num_classes");
  const auto opt = decode_options(conf, max_det, class_allowed, box_scale);  // no NMS here
  edgeseg::Detections d;
  {
    py::gil_scoped_release release;
    d = edgeseg::decode_yolo_e2e(v, num_classes, opt);
  }
  return detections_to_python(std::move(d));
}

py::array_t<int64_t> nms(const py::object& boxes_obj, const py::object& scores_obj,
                         const py::object& classes_obj, const py::object& iou_obj,
                         const py::object& max_det_obj, const py::object& agnostic_obj) {
  const float iou = to_float(iou_obj, "iou");
  const int64_t max_det = to_int64(max_det_obj, "max_det");
  const bool agnostic = to_bool(agnostic_obj, "agnostic");
  py::array boxes = contiguous<float>(boxes_obj, 2, "boxes");
  py::array scores = contiguous<float>(scores_obj, 1, "scores");
  check_boxes(boxes);
  const int64_t n = boxes.shape(0);
  if (scores.shape(0) != n) throw InvalidArgument("boxes and scores must have the same length");
  std::vector<int32_t> zeros;
  const int32_t* cls = nullptr;
  py::array classes;
  if (classes_obj.is_none()) {
    zeros.assign(static_cast<size_t>(n), 0);
    cls = zeros.data();
  } else {
    classes = contiguous<int32_t>(classes_obj, 1, "class_ids");
    if (classes.shape(0) != n)
      throw InvalidArgument("boxes and class_ids must have the same length");
    cls = static_cast<const int32_t*>(classes.data());
  }
  const auto* b = static_cast<const float*>(boxes.data());
  const auto* s = static_cast<const float*>(scores.data());
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(s[i])) throw InvalidArgument("scores contain NaN or infinity");
  }
  for (int64_t i = 0; i < 4 * n; ++i) {
    if (!std::isfinite(b[i])) throw InvalidArgument("boxes contain NaN or infinity");
  }
  std::vector<int64_t> keep;
  {
    py::gil_scoped_release release;
    keep = edgeseg::nms(b, s, cls, n, iou, max_det, agnostic);
  }
  const py::ssize_t k = static_cast<py::ssize_t>(keep.size());
  return to_numpy(std::move(keep), {k});
}

py::array_t<float> unletterbox_boxes(const py::object& boxes_obj, const py::object& lb_obj) {
  const auto& lb = to_letterbox(lb_obj);
  py::array boxes = contiguous<float>(boxes_obj, 2, "boxes");
  check_boxes(boxes);
  const auto n = boxes.shape(0);
  const auto* src = static_cast<const float*>(boxes.data());
  std::vector<float> out(src, src + 4 * n);
  edgeseg::unletterbox_boxes(out.data(), n, lb);
  return to_numpy(std::move(out), {n, 4});
}

py::object assemble_masks(const py::object& protos_obj, const py::object& coeffs_obj,
                          const py::object& boxes_obj, const py::object& input_hw_obj,
                          const py::object& image_hw_obj, const py::object& soft_obj,
                          const py::object& drop_empty_obj, const py::object& quant) {
  const auto input_hw = to_hw(input_hw_obj, "input_hw");
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
    m = edgeseg::assemble_masks(pv, static_cast<const float*>(coeffs.data()),
                                static_cast<const float*>(boxes.data()), n, input_hw.first,
                                input_hw.second, image_hw.first, image_hw.second, opt);
  }
  return masks_to_python(std::move(m), soft);
}

std::vector<py::bytes> rle_encode(const py::object& bits_obj, const py::object& offsets_obj,
                                  const py::object& rects_obj, const py::object& image_hw_obj) {
  const auto image_hw = to_hw(image_hw_obj, "image_hw");
  py::array bits = contiguous<uint8_t>(bits_obj, 1, "bits");
  py::array offsets = contiguous<int64_t>(offsets_obj, 1, "offsets");
  py::array rects = contiguous<int32_t>(rects_obj, 2, "rects");
  const int64_t n = rects.shape(0);
  if (rects.shape(1) != 4 || offsets.shape(0) != n + 1)
    throw InvalidArgument("rects must be (N, 4) and offsets (N + 1,)");
  const auto* off = static_cast<const int64_t*>(offsets.data());
  const auto* r = static_cast<const int32_t*>(rects.data());
  const auto* b = static_cast<const uint8_t*>(bits.data());
  std::vector<std::string> out(static_cast<size_t>(n));
  {
    py::gil_scoped_release release;
    for (int64_t i = 0; i < n; ++i) {
      const int32_t* q = r + 4 * i;
      // Ordered so that no difference overflows: offsets are arbitrary int64 values.
      if (off[i] < 0 || off[i + 1] < off[i] || off[i + 1] > bits.shape(0) ||
          off[i + 1] - off[i] != (int64_t{q[2]} + 7) / 8 * int64_t{q[3]})
        throw InvalidArgument("mask offsets do not match the bit-packed crop sizes");
      out[i] = edgeseg::rle_to_string(
          edgeseg::rle_counts(b + off[i], q[0], q[1], q[2], q[3], image_hw.first, image_hw.second));
    }
  }
  std::vector<py::bytes> result;
  result.reserve(out.size());
  for (auto& s : out) result.emplace_back(s);
  return result;
}

}  // namespace

// ==== Tracking (edgeseg/track.hpp) ==============================================================
// The core Tracker behind edgeseg.track.Tracker, linear_assignment and mask_iou. Same conventions
// as above: arguments arrive as py::object and are converted by the helpers, so bad values are
// ValueErrors naming them; the GIL is released while the core runs.
#include <mutex>

#include "edgeseg/track.hpp"

namespace {

// The core tracker is not thread-safe; the lock turns two Python threads racing on one Tracker
// (the GIL is released during update) into serialized calls instead of undefined behaviour.
struct PyTracker {
  explicit PyTracker(const edgeseg::TrackerOptions& o) : tracker(o) {}
  edgeseg::Tracker tracker;
  std::mutex mutex;
};

edgeseg::TrackerOptions tracker_options(const py::kwargs& kwargs) {
  edgeseg::TrackerOptions o;
  for (const auto& item : kwargs) {
    const std::string key = py::str(item.first);
    const py::handle v = item.second;
    if (key == "high_thresh")
      o.high_thresh = to_float(v, key);
    else if (key == "low_thresh")
      o.low_thresh = to_float(v, key);
    else if (key == "new_track_thresh")
      o.new_track_thresh = to_float(v, key);
    else if (key == "match_iou")
      o.match_iou = to_float(v, key);
    else if (key == "second_match_iou")
      o.second_match_iou = to_float(v, key);
    else if (key == "unconfirmed_match_iou")
      o.unconfirmed_match_iou = to_float(v, key);
    else if (key == "duplicate_iou")
      o.duplicate_iou = to_float(v, key);
    else if (key == "lost_frames")
      o.lost_frames = to_int64(v, key);
    else if (key == "min_hits")
      o.min_hits = to_int64(v, key);
    else if (key == "use_masks")
      o.use_masks = to_bool(v, key);
    else if (key == "fuse_score")
      o.fuse_score = to_bool(v, key);
    else
      throw InvalidArgument("unknown tracker option '" + key + "'");
  }
  edgeseg::check_tracker_options(o);
  return o;
}

py::dict tracker_options_dict(const edgeseg::TrackerOptions& o) {
  py::dict d;
  d["high_thresh"] = o.high_thresh;
  d["low_thresh"] = o.low_thresh;
  d["new_track_thresh"] = o.new_track_thresh;
  d["match_iou"] = o.match_iou;
  d["second_match_iou"] = o.second_match_iou;
  d["unconfirmed_match_iou"] = o.unconfirmed_match_iou;
  d["duplicate_iou"] = o.duplicate_iou;
  d["lost_frames"] = o.lost_frames;
  d["min_hits"] = o.min_hits;
  d["use_masks"] = o.use_masks;
  d["fuse_score"] = o.fuse_score;
  return d;
}

py::tuple tracker_update(PyTracker& self, const py::object& boxes_obj, const py::object& scores_obj,
                         const py::object& classes_obj, const py::object& rects_obj,
                         const py::object& offsets_obj, const py::object& bits_obj,
                         const py::object& warp_obj) {
  py::array boxes = contiguous<float>(boxes_obj, 2, "boxes");
  py::array scores = contiguous<float>(scores_obj, 1, "scores");
  check_boxes(boxes);
  const int64_t n = boxes.shape(0);
  if (scores.shape(0) != n)
    throw InvalidArgument("boxes and scores must have the same length, got " + std::to_string(n) +
                          " and " + std::to_string(scores.shape(0)));
  py::array classes;
  const int32_t* cls = nullptr;
  if (!classes_obj.is_none()) {
    classes = contiguous<int32_t>(classes_obj, 1, "class_ids");
    if (classes.shape(0) != n)
      throw InvalidArgument("boxes and class_ids must have the same length, got " +
                            std::to_string(n) + " and " + std::to_string(classes.shape(0)));
    cls = static_cast<const int32_t*>(classes.data());
  }
  const int given = !rects_obj.is_none() + !offsets_obj.is_none() + !bits_obj.is_none();
  if (given != 0 && given != 3)
    throw InvalidArgument("mask_rects, mask_offsets and mask_bits go together: give all or none");
  CropArgs crops;
  edgeseg::MaskCrops mc;
  if (given == 3) {
    crops = crop_args(rects_obj, offsets_obj, bits_obj, n, "masks");
    mc = crops.crops();
  }
  float warp[6];
  if (!warp_obj.is_none()) {
    py::array w = contiguous<float>(warp_obj, 2, "warp");
    if (w.shape(0) != 2 || w.shape(1) != 3)
      throw InvalidArgument("warp must have shape (2, 3), got " +
                            std::string(py::str(w.attr("shape"))));
    std::copy_n(static_cast<const float*>(w.data()), 6, warp);
  }
  // The core copies the boxes before it reads them twice; the bits are only ever read.
  std::vector<float> box_copy(static_cast<const float*>(boxes.data()),
                              static_cast<const float*>(boxes.data()) + 4 * n);
  std::vector<float> score_copy(static_cast<const float*>(scores.data()),
                                static_cast<const float*>(scores.data()) + n);
  std::vector<int32_t> class_copy;
  if (cls != nullptr) class_copy.assign(cls, cls + n);
  edgeseg::TrackUpdate u;
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(self.mutex);
    u = self.tracker.update(box_copy.data(), score_copy.data(),
                            cls != nullptr ? class_copy.data() : nullptr, n,
                            given == 3 ? &mc : nullptr, warp_obj.is_none() ? nullptr : warp);
  }
  const py::ssize_t k = static_cast<py::ssize_t>(u.ids.size());
  return py::make_tuple(to_numpy(std::move(u.ids), {k}), to_numpy(std::move(u.classes), {k}));
}

py::dict tracker_tracks(PyTracker& self) {
  std::vector<edgeseg::TrackState> ts;
  {
    std::lock_guard<std::mutex> lock(self.mutex);
    ts = self.tracker.tracks();
  }
  const size_t k = ts.size();
  std::vector<int64_t> ids(k), hits(k), age(k), since(k);
  std::vector<float> boxes(4 * k), scores(k);
  std::vector<int32_t> classes(k);
  std::vector<uint8_t> lost(k);
  for (size_t i = 0; i < k; ++i) {
    ids[i] = ts[i].id;
    std::copy_n(ts[i].box, 4, boxes.begin() + 4 * i);
    scores[i] = ts[i].score;
    classes[i] = ts[i].class_id;
    hits[i] = ts[i].hits;
    age[i] = ts[i].age;
    since[i] = ts[i].time_since_update;
    lost[i] = ts[i].lost;
  }
  const auto n = static_cast<py::ssize_t>(k);
  py::dict d;
  d["ids"] = to_numpy(std::move(ids), {n});
  d["boxes"] = to_numpy(std::move(boxes), {n, 4});
  d["scores"] = to_numpy(std::move(scores), {n});
  d["class_ids"] = to_numpy(std::move(classes), {n});
  d["hits"] = to_numpy(std::move(hits), {n});
  d["age"] = to_numpy(std::move(age), {n});
  d["time_since_update"] = to_numpy(std::move(since), {n});
  d["lost"] = to_numpy(std::move(lost), {n}).attr("astype")("bool");
  return d;
}

py::array_t<int64_t> linear_assignment(const py::object& cost_obj, const py::object& max_cost) {
  const float limit = to_float(max_cost, "max_cost");
  py::array cost = contiguous<float>(cost_obj, 2, "cost");
  const int64_t rows = cost.shape(0), cols = cost.shape(1);
  std::vector<int64_t> out;
  {
    py::gil_scoped_release release;
    out = edgeseg::linear_assignment(static_cast<const float*>(cost.data()), rows, cols, limit);
  }
  return to_numpy(std::move(out), {static_cast<py::ssize_t>(rows)});
}

py::array_t<double> mask_iou(const py::object& ra, const py::object& oa, const py::object& ba,
                             const py::object& rb, const py::object& ob, const py::object& bb,
                             const py::object& shifts_obj) {
  CropArgs a = crop_args(ra, oa, ba, -1, "first masks");
  CropArgs b = crop_args(rb, ob, bb, -1, "second masks");
  const auto na = static_cast<int64_t>(a.rects.size() / 4);
  const auto nb = static_cast<int64_t>(b.rects.size() / 4);
  std::vector<int64_t> shifts;
  if (!shifts_obj.is_none()) {
    py::array s = contiguous<int64_t>(shifts_obj, 2, "shifts");
    if (s.shape(0) != na || s.shape(1) != 2)
      throw InvalidArgument("shifts must have shape (" + std::to_string(na) + ", 2), got " +
                            std::string(py::str(s.attr("shape"))));
    const auto* p = static_cast<const int64_t*>(s.data());
    shifts.assign(p, p + 2 * na);
  }
  const edgeseg::MaskCrops ca = a.crops(), cb = b.crops();
  std::vector<double> out;
  {
    py::gil_scoped_release release;
    out = edgeseg::mask_iou(ca, na, cb, nb, shifts_obj.is_none() ? nullptr : shifts.data());
  }
  return to_numpy(std::move(out), {static_cast<py::ssize_t>(na), static_cast<py::ssize_t>(nb)});
}

void bind_tracker(py::module_& m) {
  py::class_<PyTracker>(m, "Tracker",
                        "ByteTrack-style tracker of the C++ core (see edgeseg.track.Tracker). "
                        "Options as keywords; not meant to be shared between threads.")
      .def(py::init([](const py::kwargs& kw) { return new PyTracker(tracker_options(kw)); }))
      .def("update", &tracker_update, py::arg("boxes"), py::arg("scores"),
           py::arg("class_ids") = py::none(), py::arg("mask_rects") = py::none(),
           py::arg("mask_offsets") = py::none(), py::arg("mask_bits") = py::none(),
           py::arg("warp") = py::none(),
           "One frame: returns (track ids int64 (N,), voted classes int32 (N,)), -1 where "
           "a detection is in no confirmed track.")
      .def("tracks", &tracker_tracks, "Confirmed tracks (tracked and lost) as a dict of arrays.")
      .def("reset",
           [](PyTracker& self) {
             std::lock_guard<std::mutex> lock(self.mutex);
             self.tracker.reset();
           })
      .def_property_readonly("frame",
                             [](PyTracker& self) {
                               std::lock_guard<std::mutex> lock(self.mutex);
                               return self.tracker.frame();
                             })
      .def_property_readonly(
          "options", [](PyTracker& self) { return tracker_options_dict(self.tracker.options()); });
  m.def("linear_assignment", &linear_assignment, py::arg("cost"), py::arg("max_cost"),
        "Per row the column matched at minimum total cost, or -1; pairs costing more than "
        "max_cost are never matched.");
  m.def("mask_iou", &mask_iou, py::arg("rects_a"), py::arg("offsets_a"), py::arg("bits_a"),
        py::arg("rects_b"), py::arg("offsets_b"), py::arg("bits_b"), py::arg("shifts") = py::none(),
        "IoU of every pair of two sets of bit-packed crops, the first set moved by shifts.");
}
// ==== end of Tracking ===========================================================================

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "edgeseg C++ core: decoding, NMS, box-cropped masks and RLE over numpy buffers";
  py::register_local_exception<InvalidArgument>(m, "CoreValueError", PyExc_ValueError);
  {
    auto namedtuple = py::module_::import("collections").attr("namedtuple");
    py::object detections =
        namedtuple("Detections", py::make_tuple("boxes", "scores", "class_ids", "coefficients"),
                   py::arg("module") = "edgeseg._core");
    detections.attr("__doc__") =
        "Decoded detections in model-input pixels by descending score: boxes (N, 4) x1 y1 x2 y2, "
        "scores (N,), class_ids (N,), mask coefficients (N, C).";
    py::object mask_set =
        namedtuple("MaskSet", py::make_tuple("keep", "rects", "offsets", "bits", "probs", "areas"),
                   py::arg("module") = "edgeseg._core");
    mask_set.attr("__doc__") =
        "Box-cropped bit-packed masks: keep (indices of the detections that have one), rects (K, "
        "4) "
        "x0 y0 w h in image pixels, offsets (K + 1) into bits, bits (row-major crops, ceil(w / 8) "
        "bytes a row, pixel x in bit x % 8), probs (float crops, soft masks only, else None), "
        "areas (K) pixels set.";
    m.attr("Detections") = detections;
    m.attr("MaskSet") = mask_set;
    result_types().detections = detections;  // borrowed: the module's attributes keep them alive
    result_types().mask_set = mask_set;
  }

  py::class_<edgeseg::Letterbox>(m, "Letterbox")
      .def_readonly("src_h", &edgeseg::Letterbox::src_h)
      .def_readonly("src_w", &edgeseg::Letterbox::src_w)
      .def_readonly("dst_h", &edgeseg::Letterbox::dst_h)
      .def_readonly("dst_w", &edgeseg::Letterbox::dst_w)
      .def_readonly("new_h", &edgeseg::Letterbox::new_h)
      .def_readonly("new_w", &edgeseg::Letterbox::new_w)
      .def_readonly("pad_top", &edgeseg::Letterbox::pad_top)
      .def_readonly("pad_left", &edgeseg::Letterbox::pad_left)
      .def_property_readonly("resize",
                             [](const edgeseg::Letterbox& l) { return resize_name(l.resize); })
      .def("__repr__", [](const edgeseg::Letterbox& l) {
        return "Letterbox(src=" + std::to_string(l.src_h) + "x" + std::to_string(l.src_w) +
               ", dst=" + std::to_string(l.dst_h) + "x" + std::to_string(l.dst_w) +
               ", new=" + std::to_string(l.new_h) + "x" + std::to_string(l.new_w) +
               ", pad_top=" + std::to_string(l.pad_top) +
               ", pad_left=" + std::to_string(l.pad_left) + ", resize=" + resize_name(l.resize) +
               ")";
      });
  m.def(
      "make_letterbox",
      [](const py::object& src_h, const py::object& src_w, const py::object& dst_h,
         const py::object& dst_w, const py::object& resize) {
        return edgeseg::make_letterbox(to_int64(src_h, "src_h"), to_int64(src_w, "src_w"),
                                       to_int64(dst_h, "dst_h"), to_int64(dst_w, "dst_w"),
                                       to_resize(resize));
      },
      py::arg("src_h"), py::arg("src_w"), py::arg("dst_h"), py::arg("dst_w"),
      py::arg("resize") = "letterbox");
  m.def("decode_yolo", &decode_yolo, py::arg("prediction"), py::arg("num_classes"), py::arg("conf"),
        py::arg("iou"), py::arg("max_det"), py::arg("pre_nms_topk"), py::arg("agnostic"),
        py::arg("class_allowed") = py::none(), py::arg("quant") = py::none(),
        py::arg("box_scale") = py::make_tuple(1.f, 1.f), py::arg("coefficients") = py::none(),
        py::arg("coefficients_quant") = py::none(), py::arg("objectness") = false);
  m.def("decode_yolo_e2e", &decode_yolo_e2e, py::arg("rows"), py::arg("num_classes"),
        py::arg("conf"), py::arg("max_det"), py::arg("class_allowed") = py::none(),
        py::arg("quant") = py::none(), py::arg("box_scale") = py::make_tuple(1.f, 1.f));
  m.def("nms", &nms, py::arg("boxes"), py::arg("scores"), py::arg("class_ids") = py::none(),
        py::arg("iou") = 0.7f, py::arg("max_det") = 300, py::arg("agnostic") = false);
  m.def("unletterbox_boxes", &unletterbox_boxes, py::arg("boxes"), py::arg("letterbox"));
  m.def("assemble_masks", &assemble_masks, py::arg("prototypes"), py::arg("coefficients"),
        py::arg("boxes"), py::arg("input_hw"), py::arg("image_hw"), py::arg("soft") = false,
        py::arg("drop_empty") = true, py::arg("quant") = py::none());
  m.def("rle_encode", &rle_encode, py::arg("bits"), py::arg("offsets"), py::arg("rects"),
        py::arg("image_hw"));
  bind_tracker(m);  // Tracking
  bind_nms_variants(m);
  bind_instance_masks(m);
  bind_yolact(m);
  bind_solov2(m);
  bind_dynamic_masks(m);
  bind_split(m);
  bind_postprocess(m);
}
