// Conversions shared by the binding files: Python objects in (ValueErrors naming the argument),
// numpy arrays out without copies. Header-only so each bind_*.cpp stays a separate unit.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "edgeseg/core.hpp"
#include "edgeseg/track.hpp"  // MaskCrops

namespace edgeseg_py {

namespace py = pybind11;
using edgeseg::InvalidArgument;

// Named result types (collections.namedtuple, so results still unpack as tuples), made once when
// the module is imported (bindings.cpp) and kept alive by the module's attributes.
struct ResultTypes {
  py::handle detections;  // Detections(boxes, scores, class_ids, coefficients)
  py::handle mask_set;    // MaskSet(keep, rects, offsets, bits, probs, areas)
  py::handle instances;   // Instances(boxes, scores, class_ids, masks)
};
inline ResultTypes& result_types() {
  static ResultTypes types;
  return types;
}

// ---- Python scalars and pairs -----------------------------------------------------------------
// Every argument that is not an array arrives as py::object and is converted here, so a value of
// the wrong type or out of range is a ValueError naming the argument. With typed parameters
// pybind11 would raise a TypeError listing the whole signature for an int >= 2^63, and a
// RuntimeError (cast_error) for a pair with a bad element.

inline std::string describe(const py::handle& obj) {
  std::string r = py::repr(obj);
  if (r.size() > 60) r = r.substr(0, 57) + "...";
  return std::string(py::str(py::type::handle_of(obj).attr("__name__"))) + " " + r;
}

// Any integer, including numpy integers (anything with __index__), but not floats.
inline int64_t to_int64(const py::handle& obj, const std::string& name) {
  if (PyFloat_Check(obj.ptr()) || !PyIndex_Check(obj.ptr()))
    throw InvalidArgument(name + " must be an integer, got " + describe(obj));
  auto index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (overflow != 0)
    throw InvalidArgument(name + " is out of range (it must fit in 64 bits), got " +
                          std::string(py::str(index)));
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<int64_t>(v);
}

// Any real number. Doubles outside float's range become +-inf explicitly (a plain conversion is
// undefined there); the core then rejects them as non-finite.
inline float to_float(const py::handle& obj, const std::string& name) {
  if (PyUnicode_Check(obj.ptr()) || PyBytes_Check(obj.ptr()))
    throw InvalidArgument(name + " must be a number, got " + describe(obj));
  const double d = PyFloat_AsDouble(obj.ptr());
  if (d == -1.0 && PyErr_Occurred()) {
    PyErr_Clear();
    throw InvalidArgument(name + " must be a number, got " + describe(obj));
  }
  constexpr float inf = std::numeric_limits<float>::infinity();
  if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max())
    return d > 0 ? inf : -inf;
  return static_cast<float>(d);
}

// As pybind11 takes a bool (True/False, numpy.bool_, or any object with __bool__).
inline bool to_bool(const py::handle& obj, const std::string& name) {
  try {
    return obj.cast<bool>();
  } catch (const py::cast_error&) {
    throw InvalidArgument(name + " must be True or False, got " + describe(obj));
  }
}

// A 2-sequence (tuple, list, array), not a string.
inline std::pair<py::object, py::object> to_pair(const py::handle& obj, const std::string& name,
                                                 const char* expected) {
  const bool sequence = PySequence_Check(obj.ptr()) && !PyUnicode_Check(obj.ptr()) &&
                        !PyBytes_Check(obj.ptr()) && !PyByteArray_Check(obj.ptr());
  if (!sequence || PySequence_Size(obj.ptr()) != 2) {
    PyErr_Clear();  // PySequence_Size sets an error for sequences without a length
    throw InvalidArgument(name + " must be a pair " + expected + ", got " + describe(obj));
  }
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  return {seq[0], seq[1]};
}

inline std::pair<int64_t, int64_t> to_hw(const py::handle& obj, const char* name) {
  auto [h, w] = to_pair(obj, name, "(height, width) of integers");
  return {to_int64(h, std::string(name) + " height"), to_int64(w, std::string(name) + " width")};
}

// Hands a vector to numpy without copying: the array owns it through a capsule.
template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& v, std::vector<py::ssize_t> shape) {
  auto* owner = new std::vector<T>(std::move(v));
  py::capsule free_when_done(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(shape, owner->data(), free_when_done);
}

// An array of dtype T and `ndim` dimensions, as given (strided views are fine) unless its data
// or strides are misaligned for T (np.frombuffer at an odd offset, a field of a packed record
// array): reading a float or int through a misaligned pointer is undefined behaviour, so those
// arrive as an aligned copy.
template <typename T>
inline py::array checked(const py::handle& obj, int ndim, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw InvalidArgument(std::string(name) + " must be a numpy array");
  auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(
          py::dtype::of<T>()))  // equal, not is: unpickled arrays carry a new dtype object
    throw InvalidArgument(std::string(name) + " must have dtype " +
                          std::string(py::str(py::dtype::of<T>())) + ", got " +
                          std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    throw InvalidArgument(std::string(name) + " must have " + std::to_string(ndim) +
                          " dimensions, got shape " + std::string(py::str(obj.attr("shape"))));
  bool aligned = reinterpret_cast<uintptr_t>(a.data()) % alignof(T) == 0;
  for (int i = 0; i < ndim; ++i)
    aligned &= a.strides(i) % static_cast<py::ssize_t>(alignof(T)) == 0;
  if (!aligned) {
    // numpy copies whatever lacks a requested flag: here, into fresh (aligned) memory.
    constexpr int kFlags =
        py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
    a = py::array::ensure(a, kFlags);
    if (!a) throw std::bad_alloc();  // ensure() only fails to allocate here
  }
  return a;
}

inline int64_t elem_stride(const py::array& a, int i) {
  return static_cast<int64_t>(a.strides(i)) / static_cast<int64_t>(a.itemsize());
}

// float32, int8 or uint8 data; quantized data needs its (scale, zero_point).
inline py::array tensor(const py::handle& obj, int ndim, const char* name, edgeseg::DType* dtype) {
  if (!py::isinstance<py::array>(obj))
    throw InvalidArgument(std::string(name) + " must be a numpy array");
  auto dt = py::reinterpret_borrow<py::array>(obj).dtype();
  if (dt.is(py::dtype::of<int8_t>())) {
    *dtype = edgeseg::DType::kInt8;
    return checked<int8_t>(obj, ndim, name);
  }
  if (dt.is(py::dtype::of<uint8_t>())) {
    *dtype = edgeseg::DType::kUInt8;
    return checked<uint8_t>(obj, ndim, name);
  }
  *dtype = edgeseg::DType::kFloat32;
  return checked<float>(obj, ndim, name);  // raises for any other dtype, naming float32
}

inline edgeseg::Quant quant_of(edgeseg::DType dtype, const py::object& quant, const char* name) {
  edgeseg::Quant q;
  if (dtype == edgeseg::DType::kFloat32) {
    if (!quant.is_none())
      throw InvalidArgument(std::string(name) + " is float32: it takes no quantization");
    return q;
  }
  if (quant.is_none())
    throw InvalidArgument(std::string(name) +
                          " is quantized: pass its quantization as (scale, zero_point)");
  auto [scale, zero_point] =
      to_pair(quant, std::string("quant of ") + name, "(scale: float, zero_point: int)");
  q.scale = to_float(scale, std::string("quant scale of ") + name);
  const int64_t zp = to_int64(zero_point, std::string("quant zero_point of ") + name);
  // The core checks the dtype's range; this only keeps the narrowing to int32 exact.
  if (zp < std::numeric_limits<int32_t>::min() || zp > std::numeric_limits<int32_t>::max())
    throw InvalidArgument(std::string(name) + " has zero point " + std::to_string(zp) +
                          " outside the range of its dtype");
  q.zero_point = static_cast<int32_t>(zp);
  return q;
}

inline edgeseg::View2D view2d(const py::object& obj, const py::object& quant, const char* name,
                              py::array* keep) {
  edgeseg::View2D v;
  *keep = tensor(obj, 2, name, &v.dtype);
  v.data = keep->data();
  v.rows = keep->shape(0);
  v.cols = keep->shape(1);
  v.stride_row = elem_stride(*keep, 0);
  v.stride_col = elem_stride(*keep, 1);
  v.quant = quant_of(v.dtype, quant, name);
  return v;
}

// An already checked (channels, height, width) array as a ProtoView, read through its strides.
inline edgeseg::ProtoView proto_view(const py::array& a, edgeseg::DType dtype,
                                     const edgeseg::Quant& quant = {}) {
  edgeseg::ProtoView v;
  v.data = a.data();
  v.dtype = dtype;
  v.channels = a.shape(0);
  v.height = a.shape(1);
  v.width = a.shape(2);
  v.stride_c = elem_stride(a, 0);
  v.stride_y = elem_stride(a, 1);
  v.stride_x = elem_stride(a, 2);
  v.quant = quant;
  return v;
}

template <typename T>
inline py::array contiguous(const py::handle& obj, int ndim, const char* name) {
  py::array a = checked<T>(obj, ndim, name);
  return py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a);
}

// The options both decoders take; the NMS ones (iou, pre_nms_topk, agnostic) are set by the caller.
inline edgeseg::DecodeOptions decode_options(const py::object& conf, const py::object& max_det,
                                             const py::object& class_allowed,
                                             const py::object& box_scale) {
  edgeseg::DecodeOptions opt;
  auto [sx, sy] = to_pair(box_scale, "box_scale", "(x, y) of numbers");
  opt.box_scale_x = to_float(sx, "box_scale x");
  opt.box_scale_y = to_float(sy, "box_scale y");
  opt.conf = to_float(conf, "conf");
  opt.max_det = to_int64(max_det, "max_det");
  if (!class_allowed.is_none()) {
    py::array flags = contiguous<uint8_t>(class_allowed, 1, "class_allowed");
    const auto* p = static_cast<const uint8_t*>(flags.data());
    opt.class_allowed.assign(p, p + flags.shape(0));
  }
  return opt;
}

inline py::object detections_to_python(edgeseg::Detections&& d) {
  const py::ssize_t n = d.size(), nm = d.num_coeffs;
  return result_types().detections(
      to_numpy(std::move(d.boxes), {n, 4}), to_numpy(std::move(d.scores), {n}),
      to_numpy(std::move(d.classes), {n}), to_numpy(std::move(d.coeffs), {n, nm}));
}

inline void check_boxes(const py::array& boxes) {
  if (boxes.shape(1) != 4)
    throw InvalidArgument("boxes must have shape (N, 4), got (" + std::to_string(boxes.shape(0)) +
                          ", " + std::to_string(boxes.shape(1)) + ")");
}

// Box-cropped bit-packed masks as Python gets them: (keep, rects, offsets, bits, probs, areas);
// probs is None unless soft masks were asked for.
inline py::object masks_to_python(edgeseg::Masks&& m, bool soft) {
  const py::ssize_t k = static_cast<py::ssize_t>(m.keep.size());
  const py::ssize_t total = static_cast<py::ssize_t>(m.bits.size());
  const py::ssize_t total_px = static_cast<py::ssize_t>(m.probs.size());
  py::object probs = py::none();
  if (soft) probs = to_numpy(std::move(m.probs), {total_px});
  return result_types().mask_set(
      to_numpy(std::move(m.keep), {k}), to_numpy(std::move(m.rects), {k, 4}),
      to_numpy(std::move(m.offsets), {k + 1}), to_numpy(std::move(m.bits), {total}), probs,
      to_numpy(std::move(m.areas), {k}));
}

// Resize modes by their Python names (Preprocess.resize).
inline const char* resize_name(edgeseg::Resize r) {
  switch (r) {
    case edgeseg::Resize::kKeepRatio:
      return "keep_ratio";
    case edgeseg::Resize::kStretch:
      return "stretch";
    default:
      return "letterbox";
  }
}

inline edgeseg::Resize to_resize(const py::handle& obj) {
  const std::string name = PyUnicode_Check(obj.ptr()) ? std::string(py::str(obj)) : "";
  if (name == "letterbox") return edgeseg::Resize::kCentered;
  if (name == "keep_ratio") return edgeseg::Resize::kKeepRatio;
  if (name == "stretch") return edgeseg::Resize::kStretch;
  throw InvalidArgument("resize must be 'letterbox', 'keep_ratio' or 'stretch', got " +
                        describe(obj));
}

// The Letterbox argument of a binding (made by make_letterbox), or a ValueError.
inline const edgeseg::Letterbox& to_letterbox(const py::handle& obj) {
  if (!py::isinstance<edgeseg::Letterbox>(obj))
    throw InvalidArgument("letterbox must be a Letterbox (from make_letterbox), got " +
                          describe(obj));
  return obj.cast<const edgeseg::Letterbox&>();
}

// Crops given as (rects (N, 4) int32, offsets (N + 1,) int64, bits (B,) uint8). Rects and offsets
// are copied (a few bytes per mask): the core reads them after its checks with the GIL released,
// and another thread writing them in between must not turn checked offsets into wild reads.
struct CropArgs {
  std::vector<int32_t> rects;
  std::vector<int64_t> offsets;
  py::array bits;
  edgeseg::MaskCrops crops() const {
    edgeseg::MaskCrops c;
    c.rects = rects.data();
    c.offsets = offsets.data();
    c.bits = static_cast<const uint8_t*>(bits.data());
    c.bits_size = bits.shape(0);
    return c;
  }
};

inline CropArgs crop_args(const py::object& rects_obj, const py::object& offsets_obj,
                          const py::object& bits_obj, int64_t n, const std::string& what) {
  CropArgs a;
  py::array rects = contiguous<int32_t>(rects_obj, 2, (what + " rects").c_str());
  py::array offsets = contiguous<int64_t>(offsets_obj, 1, (what + " offsets").c_str());
  a.bits = contiguous<uint8_t>(bits_obj, 1, (what + " bits").c_str());
  if (rects.shape(1) != 4 || (n >= 0 && rects.shape(0) != n) ||
      offsets.shape(0) != rects.shape(0) + 1)
    throw InvalidArgument(what + " must have rects of shape (N, 4) and offsets of shape (N + 1,)" +
                          (n >= 0 ? " for N = " + std::to_string(n) + " detections" : "") +
                          ", got rects " + std::string(py::str(rects.attr("shape"))) +
                          " and offsets " + std::string(py::str(offsets.attr("shape"))));
  const auto* r = static_cast<const int32_t*>(rects.data());
  const auto* o = static_cast<const int64_t*>(offsets.data());
  a.rects.assign(r, r + 4 * rects.shape(0));
  a.offsets.assign(o, o + offsets.shape(0));
  return a;
}

}  // namespace edgeseg_py
