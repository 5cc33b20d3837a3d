// Argument checks shared by the core's entry points.
//
// Sizes, counts and strides come from the caller, so any product or sum of them may overflow
// int64 (undefined behaviour, and a wrapped size then passes the very check meant to stop it).
// Entry points validate with these helpers before any arithmetic on such values; the inner loops
// then work on values known to be in range and stay free of checks.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <string>

#include "edgeseg/core.hpp"

namespace edgeseg {
namespace detail {

// Image and model-input sides, prototype sides: crops are reported as int32 rects and class ids
// as int32, so anything larger could not be represented in the results.
constexpr int64_t kMaxSide = std::numeric_limits<int32_t>::max();

inline bool mul_overflows(int64_t a, int64_t b, int64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}
inline bool add_overflows(int64_t a, int64_t b, int64_t* out) {
  return __builtin_add_overflow(a, b, out);
}

// Largest |element offset| of a strided view with the given sizes (each >= 0) and strides;
// throws when it does not fit in int64 (so no address computed from it can overflow).
inline void check_extent(const char* what, std::initializer_list<int64_t> sizes,
                         std::initializer_list<int64_t> strides) {
  int64_t reach = 0;
  auto size = sizes.begin();
  for (auto stride = strides.begin(); stride != strides.end(); ++stride, ++size) {
    if (*size == 0) return;  // empty: nothing is ever read
    int64_t step;
    if (*stride == std::numeric_limits<int64_t>::min() ||
        mul_overflows(*size - 1, std::llabs(*stride), &step) || add_overflows(reach, step, &reach))
      throw InvalidArgument(std::string(what) + " has sizes and strides whose offsets overflow");
  }
}

// Quantized data is read as (q - zero_point) * scale in int and float: a zero point outside the
// data type's range would overflow that int (undefined), and a scale that is not a positive
// finite number, or so large that 255 steps overflow float, would make every value NaN or inf.
inline void check_quant(DType dtype, const Quant& q, const char* what) {
  if (dtype == DType::kFloat32) return;
  if (dtype == DType::kInt32 || dtype == DType::kInt64)
    throw InvalidArgument(std::string(what) +
                          " is an int32 / int64 tensor: only class labels are read as integers");
  if (!(q.scale > 0.f) || !std::isfinite(q.scale * 255.f))
    throw InvalidArgument(std::string(what) +
                          " has a non-positive, non-finite or too large quantization scale (" +
                          std::to_string(q.scale) + ")");
  const int32_t lo = dtype == DType::kInt8 ? -128 : 0, hi = dtype == DType::kInt8 ? 127 : 255;
  if (q.zero_point < lo || q.zero_point > hi)
    throw InvalidArgument(std::string(what) + " has zero point " + std::to_string(q.zero_point) +
                          " outside the " + (dtype == DType::kInt8 ? "int8" : "uint8") +
                          " range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

}  // namespace detail
}  // namespace edgeseg
