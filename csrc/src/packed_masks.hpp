// Bit-packed mask crops as the core's IoU code reads them (internal to the core).
//
// The tracker (mask association) and the NMS variants (mask-IoU and Matrix NMS) share these: one
// unpacking into 64-bit words, one popcount intersection, one validation of MaskCrops.
#pragma once

#include <cstdint>
#include <vector>

#include "edgeseg/track.hpp"

namespace edgeseg {
namespace detail {

// A bit-packed crop unpacked into 64-bit words: rows of `stride` words, the last one always zero
// so that a 64-bit window starting at any pixel of a row can read the word after it.
struct PackedMask {
  int64_t x0 = 0, y0 = 0, w = 0, h = 0, stride = 0, area = 0;
  std::vector<uint64_t> words;
  bool empty() const { return area == 0; }
};

// Packs one validated crop (`bytes` as in Masks, `rect` x0 y0 w h); padding bits past the width
// are cleared (callers' data may carry garbage there), so ANDs never count pixels outside a crop.
void pack(const uint8_t* bytes, const int32_t* rect, PackedMask* out);

// Pixels set in both `a` moved by (dx, dy) and `b`; only the overlap of the two rects is read.
int64_t intersection(const PackedMask& a, int64_t dx, int64_t dy, const PackedMask& b);

// IoU of `a` moved by (dx, dy) and `b`; 0 when either is empty.
double packed_iou(const PackedMask& a, int64_t dx, int64_t dy, const PackedMask& b);

// Checks n crops (rects, offsets and sizes consistent with the bits); `what` names them.
void check_masks(const MaskCrops& m, int64_t n, const char* what);

}  // namespace detail
}  // namespace edgeseg
