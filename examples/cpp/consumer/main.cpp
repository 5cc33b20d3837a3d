// The smallest program on the installed core: decode a raw YOLO-seg head of 3 anchors and print
// the detections. examples/cpp/segment runs a model end to end (ONNX Runtime -> postprocess_yolo).
#include <cstdio>
#include <vector>

#include "edgeseg/core.hpp"
#include "edgeseg/version.hpp"

int main() {
  // rows: cx, cy, w, h, one class score, one mask coefficient; columns: anchors
  const std::vector<float> pred = {10, 40, 70, 10,   40,   70,   8, 8, 8,
                                   8,  8,  8,  0.9f, 0.1f, 0.6f, 1, 2, 3};
  edgeseg::View2D v;
  v.data = pred.data();
  v.rows = 6;
  v.cols = 3;
  v.stride_row = 3;
  v.stride_col = 1;
  const edgeseg::Detections d = edgeseg::decode_yolo(v, 1, edgeseg::DecodeOptions{});
  std::printf("edgeseg %s: %lld detections\n", EDGESEG_VERSION_STRING,
              static_cast<long long>(d.size()));
  for (int64_t i = 0; i < d.size(); ++i)
    std::printf("  class %d score %.2f box %.0f %.0f %.0f %.0f\n", d.classes[i], d.scores[i],
                d.boxes[4 * i], d.boxes[4 * i + 1], d.boxes[4 * i + 2], d.boxes[4 * i + 3]);
  return d.size() == 2 ? 0 : 1;
}
