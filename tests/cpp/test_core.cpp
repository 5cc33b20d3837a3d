// C++ tests of the core built without Python (cmake -DEDGESEG_PYTHON=OFF; ctest). Each case is
// small and exact: hand-computable inputs, expected values written out. The Python suite covers
// the same functions against numpy references on real model outputs.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "edgeseg/core.hpp"
#include "edgeseg/postprocess.hpp"
#include "edgeseg/split.hpp"
#include "edgeseg/version.hpp"

namespace {

int failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                                   \
    }                                                                               \
  } while (0)

bool near(float a, float b, float tol = 1e-4f) { return std::fabs(a - b) <= tol; }

template <typename F>
bool throws_invalid(F&& f, const char* fragment) {
  try {
    f();
  } catch (const edgeseg::InvalidArgument& e) {
    return std::strstr(e.what(), fragment) != nullptr;
  }
  return false;
}

edgeseg::View2D view(const std::vector<float>& data, int64_t rows, int64_t cols) {
  edgeseg::View2D v;
  v.data = data.data();
  v.rows = rows;
  v.cols = cols;
  v.stride_row = cols;
  v.stride_col = 1;
  return v;
}

// Raw YOLO head, 2 classes, 1 coefficient, 3 anchors: anchors 0 and 1 overlap (IoU 0.6 > 0.5),
// anchor 2 is below conf.
void test_decode_yolo() {
  // rows: cx, cy, w, h, class 0, class 1, coefficient; columns: anchors
  const std::vector<float> pred = {
      10,   12,   50,    // cx
      10,   10,   50,    // cy
      10,   10,   4,     // w
      10,   10,   4,     // h
      0.9f, 0.1f, 0.1f,  // class 0
      0.2f, 0.8f, 0.2f,  // class 1
      1,    2,    3,     // coefficient
  };
  edgeseg::DecodeOptions opt;
  opt.conf = 0.25f;
  opt.iou = 0.5f;
  opt.agnostic = true;
  const auto d = edgeseg::decode_yolo(view(pred, 7, 3), 2, opt);
  CHECK(d.size() == 1);
  CHECK(d.classes[0] == 0 && near(d.scores[0], 0.9f));
  CHECK(near(d.boxes[0], 5) && near(d.boxes[1], 5) && near(d.boxes[2], 15) && near(d.boxes[3], 15));
  CHECK(d.num_coeffs == 1 && near(d.coeffs[0], 1));
  opt.agnostic = false;  // per class: both survive, best first
  const auto both = edgeseg::decode_yolo(view(pred, 7, 3), 2, opt);
  CHECK(both.size() == 2 && both.classes[1] == 1 && near(both.scores[1], 0.8f));
}

// A split head level with plain distances (1 bin): the box is the cell centre +- distances, times
// the stride.
void test_decode_yolo_split() {
  const std::vector<float> boxes = {1, 0.5f, 2, 0.5f,
                                    1, 0.5f, 1, 0.5f};  // l, t, r, b rows; 2 cells
  const std::vector<float> scores = {0.1f, 0.7f};       // 1 class
  const std::vector<float> coeffs = {3, 4};
  edgeseg::SplitLevel lv;
  lv.boxes = view(boxes, 4, 2);
  lv.scores = view(scores, 1, 2);
  lv.coeffs = view(coeffs, 1, 2);
  lv.grid_h = 1;
  lv.grid_w = 2;
  lv.stride = 8.f;
  edgeseg::DecodeOptions opt;
  const auto d = edgeseg::decode_yolo_split({lv}, 1, opt);
  CHECK(d.size() == 1);
  // cell 1: centre (1.5, 0.5); distances l 0.5, t 0.5, r 0.5, b 0.5 -> (1, 0, 2, 1) * 8
  CHECK(near(d.boxes[0], 8) && near(d.boxes[1], 0) && near(d.boxes[2], 16) && near(d.boxes[3], 8));
  CHECK(near(d.coeffs[0], 4));
  lv.grid_w = 3;  // 3 cells claimed, 2 given
  CHECK(throws_invalid([&] { edgeseg::decode_yolo_split({lv}, 1, opt); }, "cells"));
}

void test_nms() {
  const std::vector<float> boxes = {0, 0, 10, 10, 1, 1, 11, 11, 20, 20, 30, 30};
  const std::vector<float> scores = {0.9f, 0.8f, 0.7f};
  const std::vector<int32_t> classes = {0, 0, 0};
  const auto keep = edgeseg::nms(boxes.data(), scores.data(), classes.data(), 3, 0.5f, 300, false);
  CHECK(keep.size() == 2 && keep[0] == 0 && keep[1] == 2);
}

void test_letterbox_round_trip() {
  const auto lb = edgeseg::make_letterbox(480, 640, 640, 640);
  CHECK(lb.new_w == 640 && lb.new_h == 480 && lb.pad_top == 80 && lb.pad_left == 0);
  std::vector<float> box = {0, 80, 640, 560};  // the whole image inside the input
  edgeseg::unletterbox_boxes(box.data(), 1, lb);
  CHECK(near(box[0], 0) && near(box[1], 0) && near(box[2], 640) && near(box[3], 480));
}

void test_rle() {
  // a 2 x 2 mask fully set at (1, 1) in a 3 x 3 image: column-major runs 4 zeros, 2 ones, 1 zero, 2
  // ones
  const std::vector<uint8_t> crop = {0b11, 0b11};
  const auto counts = edgeseg::rle_counts(crop.data(), 1, 1, 2, 2, 3, 3);
  CHECK((counts == std::vector<uint32_t>{4, 2, 1, 2}));
  CHECK(edgeseg::rle_to_string(counts).size() == 4);
}

void test_bad_input() {
  edgeseg::DecodeOptions opt;
  opt.conf = 2.f;
  const std::vector<float> pred(7 * 3, 0.f);
  CHECK(throws_invalid([&] { edgeseg::decode_yolo(view(pred, 7, 3), 2, opt); }, "conf"));
  opt.conf = 0.25f;
  CHECK(throws_invalid([&] { edgeseg::decode_yolo(view(pred, 7, 3), 9, opt); }, "features"));
}

// The whole postprocess: the raw head of test_decode_yolo (now with a coefficient row) for a 16 x
// 32 image letterboxed into 32 x 32 (8 px of padding on top), one prototype of 8 x 8 at logit 1.
void test_postprocess_yolo() {
  const std::vector<float> pred = {10, 12,   50,   10,   10,   50,   10,   10, 4, 10, 10,
                                   4,  0.9f, 0.1f, 0.1f, 0.2f, 0.8f, 0.2f, 1,  2, -3};
  const std::vector<float> protos(64, 1.f);
  std::vector<edgeseg::Tensor> outputs(2);
  outputs[0] = {pred.data(), edgeseg::DType::kFloat32, {7, 3}, {}, {}};
  outputs[1] = {protos.data(), edgeseg::DType::kFloat32, {1, 8, 8}, {}, {}};
  edgeseg::YoloLayout layout;
  layout.num_classes = 2;
  layout.num_coeffs = 1;
  const auto lb = edgeseg::make_letterbox(16, 32, 32, 32);
  edgeseg::PostprocessOptions opt;
  opt.iou = 0.5f;
  auto r = edgeseg::postprocess_yolo(layout, outputs, lb, opt);
  // Two classes: both kept; boxes moved up by the padding and clipped to the image.
  CHECK(r.size() == 2 && r.classes[0] == 0 && r.classes[1] == 1 && near(r.scores[1], 0.8f));
  CHECK((r.boxes == std::vector<float>{5, 0, 15, 7, 7, 0, 17, 7}));
  CHECK((r.masks.rects == std::vector<int32_t>{5, 0, 10, 7, 7, 0, 10, 7}));
  CHECK((r.masks.areas == std::vector<int64_t>{70, 70}));
  opt.agnostic = true;  // IoU 0.67 across classes: the second goes
  CHECK(edgeseg::postprocess_yolo(layout, outputs, lb, opt).size() == 1);
  opt.agnostic = false;
  opt.nms = edgeseg::Suppression::kMatrix;  // decays, removes nothing above conf
  r = edgeseg::postprocess_yolo(layout, outputs, lb, opt);
  CHECK(r.size() == 2 && near(r.scores[1], 0.8f));

  // The same anchors anchor-major (transposed by strides, no copy) and an end-to-end head.
  outputs[0].shape = {3, 7};
  outputs[0].strides = {1, 3};
  layout.anchor_major = true;
  opt.nms = edgeseg::Suppression::kBox;
  CHECK(edgeseg::postprocess_yolo(layout, outputs, lb, opt).size() == 2);
  const std::vector<float> rows = {5, 13, 15, 23, 0.9f, 1, 1, 0, 0, 1, 1, 0.1f, 0, 1};
  outputs[0] = {rows.data(), edgeseg::DType::kFloat32, {2, 7}, {}, {}};
  layout.head = edgeseg::YoloHead::kEndToEnd;
  layout.anchor_major = false;
  r = edgeseg::postprocess_yolo(layout, outputs, lb, opt);
  CHECK(r.size() == 1 && r.classes[0] == 1 && (r.boxes == std::vector<float>{5, 5, 15, 15}));

  // Bad input: outputs the layout does not name, a hand-made letterbox that does not fit.
  layout.prototypes = 2;
  CHECK(throws_invalid([&] { edgeseg::postprocess_yolo(layout, outputs, lb, opt); },
                       "outputs were given"));
  layout.prototypes = 1;
  auto bad = lb;
  bad.pad_top = 0;
  CHECK(throws_invalid([&] { edgeseg::postprocess_yolo(layout, outputs, bad, opt); },
                       "make_letterbox"));
  layout.num_coeffs = 2;
  CHECK(throws_invalid([&] { edgeseg::postprocess_yolo(layout, outputs, lb, opt); },
                       "1 prototypes, the layout 2 coefficients"));
}

// The split head of test_decode_yolo_split end to end, its tensors as an NPU runtime hands them
// over: int8 scores with their own scale, an NCHW level [C, 1, 2], a 16 x 16 input, one
// prototype of 4 x 4 at logit 1, and an image of 8 x 16 (4 px of padding on top).
void test_postprocess_yolo_split() {
  const std::vector<float> boxes = {1, 0.5f, 2, 0.5f, 1, 0.5f, 1, 0.5f};
  const std::vector<int8_t> scores = {10, 70};  // scale 0.01: 0.1 and 0.7
  const std::vector<float> coeffs = {3, 4};
  const std::vector<float> protos(16, 1.f);
  std::vector<edgeseg::Tensor> outputs(4);
  outputs[0] = {protos.data(), edgeseg::DType::kFloat32, {1, 4, 4}, {}, {}};
  outputs[1] = {boxes.data(), edgeseg::DType::kFloat32, {4, 1, 2}, {}, {}};
  outputs[2] = {scores.data(), edgeseg::DType::kInt8, {1, 1, 2}, {}, {0.01f, 0}};
  outputs[3] = {coeffs.data(), edgeseg::DType::kFloat32, {1, 1, 2}, {}, {}};
  edgeseg::SplitLayout layout;
  layout.num_classes = 1;
  layout.prototypes = 0;
  edgeseg::SplitLayout::Level lv;
  lv.boxes = 1;
  lv.scores = 2;
  lv.coeffs = 3;
  lv.grid_h = 1;
  lv.grid_w = 2;
  lv.stride = 8.f;
  layout.levels = {lv};
  const auto lb = edgeseg::make_letterbox(8, 16, 16, 16);
  const auto r = edgeseg::postprocess_yolo_split(layout, outputs, lb, {});
  // box (8, 0, 16, 8) in the input, moved up 4 px and clipped to the 8 x 16 image
  CHECK(r.size() == 1 && near(r.scores[0], 0.7f));
  CHECK(near(r.boxes[0], 8) && near(r.boxes[1], 0) && near(r.boxes[2], 16) && near(r.boxes[3], 4));
  CHECK((r.masks.rects == std::vector<int32_t>{8, 0, 8, 4}) && r.masks.areas[0] == 32);
  layout.levels[0].grid_w = 3;
  CHECK(throws_invalid([&] { edgeseg::postprocess_yolo_split(layout, outputs, lb, {}); },
                       "grid of its level"));
  layout.levels[0].grid_w = 2;
  layout.levels[0].scores = 7;
  CHECK(throws_invalid([&] { edgeseg::postprocess_yolo_split(layout, outputs, lb, {}); },
                       "4 outputs were given"));
}

// YOLACT's whole postprocess: one decoded box crossing the image's edges (sanitized as yolact
// does), background + 1 class, one prototype of 4 x 4 (NHWC) at logit 1, plain resize.
void test_postprocess_yolact() {
  const std::vector<float> boxes = {0.5f, -0.1f, 0.2f, 1.2f}, conf = {0.f, 1.f}, coeffs = {1.f};
  const std::vector<float> protos(16, 1.f);
  std::vector<edgeseg::Tensor> outputs(4);
  outputs[0] = {boxes.data(), edgeseg::DType::kFloat32, {1, 4}, {}, {}};
  outputs[1] = {conf.data(), edgeseg::DType::kFloat32, {1, 2}, {}, {}};
  outputs[2] = {coeffs.data(), edgeseg::DType::kFloat32, {1, 1}, {}, {}};
  outputs[3] = {protos.data(), edgeseg::DType::kFloat32, {4, 4, 1}, {}, {}};
  edgeseg::YolactLayout layout;
  const auto lb = edgeseg::make_letterbox(100, 200, 40, 40, edgeseg::Resize::kStretch);
  edgeseg::PostprocessOptions opt;
  opt.nms = edgeseg::Suppression::kFast;
  const auto r = edgeseg::postprocess_yolact(layout, outputs, lb, opt);
  CHECK(r.size() == 1 && r.classes[0] == 0 && near(r.scores[0], 1.f));
  CHECK(near(r.boxes[0], 40) && near(r.boxes[1], 0) && near(r.boxes[2], 100) &&
        near(r.boxes[3], 100));
  CHECK(r.masks.rects.size() == 4 && r.masks.areas[0] > 0);
  opt.nms = edgeseg::Suppression::kMatrix;
  CHECK(
      throws_invalid([&] { edgeseg::postprocess_yolact(layout, outputs, lb, opt); }, "nms='fast'"));
}

// RTMDet-Ins: one level of 2 x 2 priors (stride 8, 16 x 16 input), one confident prior at (0, 0)
// with distances 4 on every side, a mask network whose only non-zero parameter is the last bias
// (logit 5 everywhere): one instance, box (0, 0, 4, 4) after clamping, a full mask.
void test_postprocess_rtmdet() {
  const std::vector<float> cls = {5, -5, -5, -5}, box(16, 4.f), feat(32, 0.f);
  std::vector<float> params(169 * 4, 0.f);
  for (int i = 0; i < 4; ++i) params[168 * 4 + i] = 5.f;  // planar: parameter 168 of every prior
  std::vector<edgeseg::Tensor> outputs(4);
  outputs[0] = {cls.data(), edgeseg::DType::kFloat32, {1, 2, 2}, {}, {}};
  outputs[1] = {box.data(), edgeseg::DType::kFloat32, {4, 2, 2}, {}, {}};
  outputs[2] = {params.data(), edgeseg::DType::kFloat32, {169, 2, 2}, {}, {}};
  outputs[3] = {feat.data(), edgeseg::DType::kFloat32, {8, 2, 2}, {}, {}};
  edgeseg::RtmdetLayout layout;
  layout.cls = {0};
  layout.box = {1};
  layout.kernel = {2};
  layout.strides = {8};
  layout.mask_feat = 3;
  const auto lb = edgeseg::make_letterbox(16, 16, 16, 16, edgeseg::Resize::kKeepRatio);
  const auto r = edgeseg::postprocess_rtmdet(layout, outputs, lb, {});
  CHECK(r.size() == 1 && r.classes[0] == 0 && near(r.scores[0], 0.99331f));
  CHECK((r.boxes == std::vector<float>{0, 0, 4, 4}) && r.masks.areas[0] == 16);
  outputs[1].shape = {4, 1, 4};
  CHECK(throws_invalid([&] { edgeseg::postprocess_rtmdet(layout, outputs, lb, {}); },
                       "grid of its level"));
}

// SOLOv2: one 2 x 2 grid, one confident cell, kernel 1, a mask feature at logit 5 everywhere: one
// instance covering the whole 16 x 16 image, its score rescored by the mean mask probability.
void test_postprocess_solov2() {
  const std::vector<float> cate = {5, -5, -5, -5}, kernel(4, 1.f), feat(16, 5.f);
  std::vector<edgeseg::Tensor> outputs(3);
  outputs[0] = {cate.data(), edgeseg::DType::kFloat32, {1, 2, 2}, {}, {}};
  outputs[1] = {kernel.data(), edgeseg::DType::kFloat32, {1, 2, 2}, {}, {}};
  outputs[2] = {feat.data(), edgeseg::DType::kFloat32, {1, 4, 4}, {}, {}};
  edgeseg::Solov2Layout layout;
  layout.cate = {0};
  layout.kernel = {1};
  layout.mask_feat = 2;
  layout.grids = {2};
  layout.strides = {8};
  edgeseg::PostprocessOptions opt;
  opt.conf = 0.1f;
  opt.nms = edgeseg::Suppression::kMatrix;
  const auto lb = edgeseg::make_letterbox(16, 16, 16, 16, edgeseg::Resize::kKeepRatio);
  const auto r = edgeseg::postprocess_solov2(layout, outputs, lb, opt);
  CHECK(r.size() == 1 && near(r.scores[0], 0.99331f * 0.99331f));
  CHECK((r.boxes == std::vector<float>{0, 0, 16, 16}) && r.masks.areas[0] == 256);
  layout.flat = true;  // [G, C] with G = 4 expected: the [1, 2, 2] map is not that
  CHECK(throws_invalid([&] { edgeseg::postprocess_solov2(layout, outputs, lb, opt); },
                       "have G = 4 rows"));
}

// An MMDeploy end-to-end export: two rows (the second below conf), int64 labels, 28 x 28 RoI
// masks at 0.9 everywhere; the image is the input (no letterbox): one instance, its box filled.
void test_postprocess_dets() {
  const std::vector<float> dets = {2, 2, 10, 10, 0.9f, 0, 0, 4, 4, 0.01f};
  const std::vector<int64_t> labels = {3, 1};
  const std::vector<float> masks(2 * 28 * 28, 0.9f);
  std::vector<edgeseg::Tensor> outputs(3);
  outputs[0] = {dets.data(), edgeseg::DType::kFloat32, {2, 5}, {}, {}};
  outputs[1] = {labels.data(), edgeseg::DType::kInt64, {2}, {}, {}};
  outputs[2] = {masks.data(), edgeseg::DType::kFloat32, {2, 28, 28}, {}, {}};
  edgeseg::DetsLayout layout;
  layout.num_classes = 4;
  const auto lb = edgeseg::make_letterbox(16, 16, 16, 16, edgeseg::Resize::kKeepRatio);
  edgeseg::PostprocessOptions opt;
  opt.conf = 0.05f;
  const auto r = edgeseg::postprocess_dets(layout, outputs, lb, opt);
  CHECK(r.size() == 1 && r.classes[0] == 3 && (r.boxes == std::vector<float>{2, 2, 10, 10}));
  CHECK(r.masks.areas[0] == 64);
  layout.num_classes = 3;  // label 3 is outside
  CHECK(throws_invalid([&] { edgeseg::postprocess_dets(layout, outputs, lb, opt); },
                       "labels holds class 3, outside the model's 3 classes"));
  // An int64 tensor is a label tensor only: no decoder reads one.
  edgeseg::View2D v;
  v.data = labels.data();
  v.dtype = edgeseg::DType::kInt64;
  v.rows = 1;
  v.cols = 2;
  v.stride_row = 2;
  v.stride_col = 1;
  CHECK(throws_invalid([&] { edgeseg::decode_yolo(v, 1, edgeseg::DecodeOptions{}); }, "int64"));
}

// Qualcomm AI Hub's per-anchor tensors (uint8 class ids with identity quantization, float scores)
// and EdgeFirst's two-way split, anchor-major with normalized boxes: the same one instance.
void test_postprocess_scored_and_two_way() {
  const std::vector<float> protos(16, 1.f);
  const std::vector<float> boxes = {8, 0, 16, 8, 0, 0, 2, 2}, scores = {0.7f, 0.1f},
                           coeffs = {4, 3};
  const std::vector<uint8_t> classes = {0, 0};
  std::vector<edgeseg::Tensor> outputs(5);
  outputs[0] = {protos.data(), edgeseg::DType::kFloat32, {1, 4, 4}, {}, {}};
  outputs[1] = {boxes.data(), edgeseg::DType::kFloat32, {2, 4}, {}, {}};
  outputs[2] = {scores.data(), edgeseg::DType::kFloat32, {2}, {}, {}};
  outputs[3] = {classes.data(), edgeseg::DType::kUInt8, {2}, {}, {1.f, 0}};
  outputs[4] = {coeffs.data(), edgeseg::DType::kFloat32, {2, 1}, {}, {}};
  edgeseg::SplitLayout layout;
  layout.kind = edgeseg::SplitLayout::Kind::kScored;
  layout.num_classes = 1;
  layout.prototypes = 0;
  layout.boxes = 1;
  layout.scores = 2;
  layout.classes = 3;
  layout.coeffs = 4;
  const auto lb = edgeseg::make_letterbox(8, 16, 16, 16);
  auto r = edgeseg::postprocess_yolo_split(layout, outputs, lb, {});
  CHECK(r.size() == 1 && (r.boxes == std::vector<float>{8, 0, 16, 4}) && r.masks.areas[0] == 32);
  // EdgeFirst: [N, 4 + classes] anchor-major, boxes cx cy w h in 0..1 of the 16 x 16 input.
  const std::vector<float> pred = {0.75f, 0.25f, 0.5f, 0.5f, 0.7f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
  outputs[1] = {pred.data(), edgeseg::DType::kFloat32, {2, 5}, {}, {}};
  layout.kind = edgeseg::SplitLayout::Kind::kTwoWay;
  layout.anchor_major = true;
  layout.boxes_normalized = true;
  r = edgeseg::postprocess_yolo_split(layout, outputs, lb, {});
  CHECK(r.size() == 1 && (r.boxes == std::vector<float>{8, 0, 16, 4}) && r.masks.areas[0] == 32);
}

void test_yolo_layout() {
  const edgeseg::Metadata meta = {{"names", "{0: 'person', 1: 'bicycle'}"}, {"stride", "32"}};
  auto l = edgeseg::yolo_layout({{1, 38, 8400}, {1, 32, 160, 160}}, {1, 3, 640, 640}, meta);
  CHECK(l.head == edgeseg::YoloHead::kRaw && l.num_classes == 2 && l.num_coeffs == 32);
  CHECK(!l.anchor_major && !l.prototypes_nhwc && l.detections == 0 && l.prototypes == 1);
  CHECK((l.names == std::vector<std::string>{"person", "bicycle"}));
  // TFLite-style: NHWC input and prototypes, anchor-major detections, outputs in the other order.
  l = edgeseg::yolo_layout({{1, 160, 160, 32}, {1, 8400, 38}}, {1, 640, 640, 3}, meta);
  CHECK(l.prototypes_nhwc && l.anchor_major && l.detections == 1 && l.prototypes == 0);
  // YOLOv5: 3 anchors per cell of strides 8, 16, 32 at 640: 25200 rows of 5 + 2 + 32.
  l = edgeseg::yolo_layout({{1, 25200, 39}, {1, 32, 160, 160}}, {1, 3, 640, 640}, meta);
  CHECK(l.head == edgeseg::YoloHead::kObjectness && l.num_classes == 2 && l.anchor_major);
  l = edgeseg::yolo_layout({{1, 300, 38}, {1, 32, 160, 160}}, {1, 3, 640, 640},
                           {{"names", "['a', 'b']"}, {"end2end", "True"}});
  CHECK(l.head == edgeseg::YoloHead::kEndToEnd && l.num_classes == 2);
  CHECK(throws_invalid([&] { edgeseg::yolo_layout({{1, 38, 8400}}, {1, 3, 640, 640}, meta); },
                       "found outputs [1, 38, 8400]"));
  CHECK(throws_invalid(
      [&] { edgeseg::yolo_layout({{1, 39, 8400}, {1, 32, 160, 160}}, {1, 3, 640, 640}, meta); },
      "neither"));
  CHECK((edgeseg::parse_names("{0: 'a, b', 1: \"it's\"}") ==
         std::vector<std::string>{"a, b", "it's"}));
  CHECK(throws_invalid([] { edgeseg::parse_names("{1: 'a'}"); }, "class names metadata"));
}

}  // namespace

int main() {
  CHECK(std::string(EDGESEG_VERSION_STRING).size() >= 5);
  test_decode_yolo();
  test_decode_yolo_split();
  test_nms();
  test_letterbox_round_trip();
  test_rle();
  test_bad_input();
  test_postprocess_yolo();
  test_postprocess_yolo_split();
  test_postprocess_yolact();
  test_postprocess_rtmdet();
  test_postprocess_solov2();
  test_postprocess_dets();
  test_postprocess_scored_and_two_way();
  test_yolo_layout();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("edgeseg %s core tests passed\n", EDGESEG_VERSION_STRING);
  return 0;
}
