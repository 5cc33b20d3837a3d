#include <string>

#include "edgeseg/core.hpp"

namespace edgeseg {
namespace {

class RunBuilder {
 public:
  void push(uint8_t value, int64_t length) {
    if (length <= 0) return;
    if (value != current_) {
      counts_.push_back(static_cast<uint32_t>(run_));
      current_ = value;
      run_ = 0;
    }
    run_ += length;
  }
  std::vector<uint32_t> finish() {
    counts_.push_back(static_cast<uint32_t>(run_));
    return std::move(counts_);
  }

 private:
  std::vector<uint32_t> counts_;
  uint8_t current_ = 0;  // COCO RLE always starts with a (possibly empty) run of zeros
  int64_t run_ = 0;
};

}  // namespace

std::vector<uint32_t> rle_counts(const uint8_t* crop, int64_t x0, int64_t y0, int64_t w, int64_t h,
                                 int64_t image_h, int64_t image_w) {
  if (image_h <= 0 || image_w <= 0) throw InvalidArgument("image size must be positive");
  // Written as differences: x0 + w and image_h * image_w can overflow int64 (a wrapped product
  // once let 2^32 x 2^32 images through, with wrong counts).
  if (x0 < 0 || y0 < 0 || w < 0 || h < 0 || w > image_w - x0 || h > image_h - y0)
    throw InvalidArgument("mask crop lies outside the image");
  if (image_h > int64_t{0xFFFFFFFF} / image_w)
    throw InvalidArgument("image too large for 32-bit COCO RLE counts (" + std::to_string(image_h) +
                          "x" + std::to_string(image_w) + ")");
  if (w > 0 && h > 0 && crop == nullptr) throw InvalidArgument("mask crop is null");
  RunBuilder runs;
  runs.push(0, x0 * image_h);
  const int64_t row_bytes = (w + 7) / 8;
  for (int64_t x = 0; x < w; ++x) {
    runs.push(0, y0);
    const uint8_t* col = crop + x / 8;
    const int shift = static_cast<int>(x % 8);
    for (int64_t y = 0; y < h; ++y) runs.push((col[y * row_bytes] >> shift) & 1, 1);
    runs.push(0, image_h - y0 - h);
  }
  runs.push(0, (image_w - x0 - w) * image_h);
  return runs.finish();
}

std::string rle_to_string(const std::vector<uint32_t>& counts) {
  // Each count (from the third on, as a difference to the count two before) is written in
  // 5-bit groups, least significant first, with 0x20 marking "more groups follow".
  std::string s;
  for (size_t i = 0; i < counts.size(); ++i) {
    int64_t x = counts[i];
    if (i > 2) x -= static_cast<int64_t>(counts[i - 2]);
    bool more = true;
    while (more) {
      int64_t c = x & 0x1f;
      x >>= 5;
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

}  // namespace edgeseg
