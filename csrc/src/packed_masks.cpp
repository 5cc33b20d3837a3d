// Bit-packed mask crops: packing into words, popcount intersections, validation (see
// packed_masks.hpp).
#include "packed_masks.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "edgeseg/core.hpp"

namespace edgeseg {
namespace detail {
namespace {

inline int64_t count_bits(const uint64_t* w, int64_t n);

}  // namespace

void pack(const uint8_t* bytes, const int32_t* rect, PackedMask* out) {
  out->x0 = rect[0];
  out->y0 = rect[1];
  out->w = rect[2];
  out->h = rect[3];
  out->area = 0;
  out->words.clear();
  if (out->w == 0 || out->h == 0) return;
  const int64_t row_bytes = (out->w + 7) / 8;
  out->stride = (out->w + 63) / 64 + 1;
  out->words.assign(static_cast<size_t>(out->stride * out->h), 0);
  const int64_t tail_bits = out->w % 64;
  const uint64_t tail_mask = tail_bits == 0 ? ~uint64_t{0} : (uint64_t{1} << tail_bits) - 1;
  for (int64_t y = 0; y < out->h; ++y) {
    const uint8_t* src = bytes + y * row_bytes;
    uint64_t* dst = out->words.data() + y * out->stride;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    // Pixel x is bit x % 8 of byte x / 8, so on a little-endian host the bytes of a row already
    // are its words.
    std::memcpy(dst, src, static_cast<size_t>(row_bytes));
#else
    for (int64_t b = 0; b < row_bytes; ++b) dst[b / 8] |= uint64_t{src[b]} << (8 * (b % 8));
#endif
    dst[out->stride - 2] &= tail_mask;
  }
  out->area = count_bits(out->words.data(), static_cast<int64_t>(out->words.size()));
  if (out->area == 0) out->words.clear();
}

namespace {

// 64 pixels of a packed row starting at pixel `bit`.
inline uint64_t window(const uint64_t* row, int64_t bit) {
  const int64_t q = bit >> 6, s = bit & 63;
  return s == 0 ? row[q] : (row[q] >> s) | (row[q + 1] << (64 - s));
}

// Pixels set in n words.
__attribute__((always_inline)) inline int64_t count_bits_body(const uint64_t* w, int64_t n) {
  int64_t count = 0;
  for (int64_t k = 0; k < n; ++k) count += __builtin_popcountll(w[k]);
  return count;
}

// Pixels set in both `a` moved by (dx, dy) and `b`. Outside the overlap of the two rects one of
// the windows reads cleared bits, so only the overlap's rows and words are visited. Always
// inlined into its callers so that __builtin_popcountll compiles for each caller's target.
__attribute__((always_inline)) inline int64_t intersection_body(const PackedMask& a, int64_t dx,
                                                                int64_t dy, const PackedMask& b) {
  const int64_t ax0 = a.x0 + dx, ay0 = a.y0 + dy;
  const int64_t ox0 = std::max(ax0, b.x0), ox1 = std::min(ax0 + a.w, b.x0 + b.w);
  const int64_t oy0 = std::max(ay0, b.y0), oy1 = std::min(ay0 + a.h, b.y0 + b.h);
  if (ox1 <= ox0 || oy1 <= oy0) return 0;
  const int64_t words = (ox1 - ox0 + 63) / 64, sa = ox0 - ax0, sb = ox0 - b.x0;
  int64_t inter = 0;
  for (int64_t y = oy0; y < oy1; ++y) {
    const uint64_t* ra = a.words.data() + (y - ay0) * a.stride;
    const uint64_t* rb = b.words.data() + (y - b.y0) * b.stride;
    for (int64_t k = 0; k < words; ++k)
      inter += __builtin_popcountll(window(ra, sa + 64 * k) & window(rb, sb + 64 * k));
  }
  return inter;
}

// Portable x86-64 builds have no popcnt instruction, and __builtin_popcountll becomes a libgcc
// call that took a third of the tracker's time: use the instruction where the CPU has it (every
// x86-64 CPU since 2008). Elsewhere (aarch64: NEON's cnt) the builtin is already inline.
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("popcnt"))) int64_t count_bits_popcnt(const uint64_t* w, int64_t n) {
  return count_bits_body(w, n);
}
int64_t count_bits_portable(const uint64_t* w, int64_t n) { return count_bits_body(w, n); }
__attribute__((target("popcnt"))) int64_t intersection_popcnt(const PackedMask& a, int64_t dx,
                                                              int64_t dy, const PackedMask& b) {
  return intersection_body(a, dx, dy, b);
}
int64_t intersection_portable(const PackedMask& a, int64_t dx, int64_t dy, const PackedMask& b) {
  return intersection_body(a, dx, dy, b);
}
// cpu_init first: this runs as a static initializer, possibly before libgcc's own.
const bool kHavePopcnt = (__builtin_cpu_init(), __builtin_cpu_supports("popcnt"));
inline int64_t count_bits(const uint64_t* w, int64_t n) {
  return kHavePopcnt ? count_bits_popcnt(w, n) : count_bits_portable(w, n);
}
inline int64_t intersection_dispatch(const PackedMask& a, int64_t dx, int64_t dy,
                                     const PackedMask& b) {
  return kHavePopcnt ? intersection_popcnt(a, dx, dy, b) : intersection_portable(a, dx, dy, b);
}
#else
inline int64_t count_bits(const uint64_t* w, int64_t n) { return count_bits_body(w, n); }
inline int64_t intersection_dispatch(const PackedMask& a, int64_t dx, int64_t dy,
                                     const PackedMask& b) {
  return intersection_body(a, dx, dy, b);
}
#endif

}  // namespace

int64_t intersection(const PackedMask& a, int64_t dx, int64_t dy, const PackedMask& b) {
  return intersection_dispatch(a, dx, dy, b);
}

double packed_iou(const PackedMask& a, int64_t dx, int64_t dy, const PackedMask& b) {
  if (a.empty() || b.empty()) return 0.0;
  const int64_t inter = intersection(a, dx, dy, b);
  return static_cast<double>(inter) / static_cast<double>(a.area + b.area - inter);
}

void check_masks(const MaskCrops& m, int64_t n, const char* what) {
  if (n == 0) return;
  if (m.rects == nullptr || m.offsets == nullptr)
    throw InvalidArgument(std::string(what) + ": mask rects or offsets are null");
  if (m.bits_size < 0 || (m.bits_size > 0 && m.bits == nullptr))
    throw InvalidArgument(std::string(what) + ": mask bits are null or have a negative size");
  if (m.offsets[0] < 0)
    throw InvalidArgument(std::string(what) + ": mask offsets must start at >= 0, got " +
                          std::to_string(m.offsets[0]));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t* r = m.rects + 4 * i;
    if (r[2] < 0 || r[3] < 0)
      throw InvalidArgument(std::string(what) + ": mask " + std::to_string(i) +
                            " has a negative width or height (" + std::to_string(r[2]) + " x " +
                            std::to_string(r[3]) + ")");
    // (w + 7) / 8 * h <= 2^28 * 2^31: no overflow. Offsets are compared before subtracting.
    const int64_t size = (int64_t{r[2]} + 7) / 8 * int64_t{r[3]};
    const int64_t a = m.offsets[i], b = m.offsets[i + 1];
    if (b < a || b > m.bits_size || b - a != size)
      throw InvalidArgument(std::string(what) +
                            ": mask offsets do not match the bit-packed crop "
                            "sizes (mask " +
                            std::to_string(i) + ": offsets " + std::to_string(a) + ".." +
                            std::to_string(b) + ", " + std::to_string(size) + " bytes expected, " +
                            std::to_string(m.bits_size) + " bytes given)");
  }
}

}  // namespace detail
}  // namespace edgeseg
