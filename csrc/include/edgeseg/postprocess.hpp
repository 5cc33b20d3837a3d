// edgeseg core: the whole postprocess of a model in one call, from the raw output buffers of one
// image and its letterbox to instances in source pixels with box-cropped bit-packed masks, for
// the Ultralytics YOLO family (raw head, end-to-end head, YOLOv5 / YOLOv7 anchors). The Python
// heads call the same functions, so C++ and Python users get the same instances.
//
// The layout (which output is which, NHWC or NCHW prototypes, normalized boxes) is a plain
// struct: fill it, or get it from the model's output shapes and metadata with yolo_layout().
//
//   edgeseg::YoloLayout layout = edgeseg::yolo_layout(output_shapes, input_shape, metadata);
//   edgeseg::Letterbox lb = edgeseg::make_letterbox(image_h, image_w, input_h, input_w);
//   // ... letterbox the image, run the model ...
//   std::vector<edgeseg::Tensor> outputs = {{det_data, edgeseg::DType::kFloat32, {116, 8400}},
//                                          {proto_data, edgeseg::DType::kFloat32, {32, 160, 160}}};
//   edgeseg::Instances found = edgeseg::postprocess_yolo(layout, outputs, lb, {});
//   // found.boxes (x1 y1 x2 y2 in image pixels), found.scores, found.classes, found.masks
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "edgeseg/core.hpp"

namespace edgeseg {

// One output tensor of one image (the batch dimension left out): float32, int8 or uint8 data of
// `shape`, with element strides (empty: dense row-major) and its quantization.
struct Tensor {
  const void* data = nullptr;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  Quant quant;
};

// How overlapping candidates are suppressed (see nms_variants.hpp).
enum class Suppression : uint8_t {
  kBox,     // greedy NMS by box IoU (Ultralytics, torchvision)
  kFast,    // YOLACT's Fast NMS (top 200 per class)
  kMatrix,  // SOLOv2's Matrix NMS by box IoU (Gaussian, sigma 2); decayed scores below conf go
  kMask,    // greedy NMS by the IoU of the candidates' masks (at prototype resolution)
};

struct PostprocessOptions {
  float conf = 0.25f;                  // keep scores strictly above this
  float iou = 0.7f;                    // suppress overlaps strictly above this
  int64_t max_det = 300;               // instances kept
  int64_t pre_nms_topk = 30000;        // candidates entering suppression, best first
  bool agnostic = false;               // suppress across classes
  std::vector<uint8_t> class_allowed;  // empty: every class; else one flag per class
  Suppression nms = Suppression::kBox;
  bool soft_masks = false;  // also keep sigmoid probabilities inside each box (Masks::probs)
};

// Instances of one image in source pixels, by descending score. Instances whose mask is empty are
// dropped (as the references do), so every instance has a mask: masks.rects[4 i..] is the crop of
// instance i (masks.keep lists which decoded detections they were).
struct Instances {
  std::vector<float> boxes;      // N x 4, x1 y1 x2 y2
  std::vector<float> scores;     // N
  std::vector<int32_t> classes;  // N
  Masks masks;                   // N box-cropped bit-packed masks (see Masks)
  int64_t size() const { return static_cast<int64_t>(scores.size()); }
};

enum class YoloHead : uint8_t {
  kRaw,        // [4 + classes + C, anchors] (or transposed): YOLOv8, YOLO11, YOLOv9 gelan
  kEndToEnd,   // [K, 6 + C] rows x1 y1 x2 y2 score class coefficients: NMS in the graph, YOLO26
  kObjectness  // [anchors, 4 + 1 + classes + C]: YOLOv5 / YOLOv7-seg (score = obj x class)
};

// Which output of an Ultralytics-style YOLO segmentation export is which.
struct YoloLayout {
  YoloHead head = YoloHead::kRaw;
  int64_t num_classes = 0;
  int64_t num_coeffs = 32;
  int64_t detections = 0;          // index of the detections output
  bool anchor_major = false;       // raw head as [anchors, features] instead of [features, anchors]
  int64_t prototypes = 1;          // index of the prototypes output
  bool prototypes_nhwc = false;    // prototypes [h, w, C] instead of [C, h, w]
  bool boxes_normalized = false;   // boxes in 0..1 of the input (TFLite exports), not pixels
  std::vector<std::string> names;  // class names from the metadata (may be empty)
};

// A model's custom metadata (ONNX metadata_props; Ultralytics writes names, stride, imgsz, args).
using Metadata = std::map<std::string, std::string>;

// The YOLO layout of a model from its output shapes (batch dimension included; -1 where dynamic),
// its input shape ([B, 3, H, W] or [B, H, W, 3]) and metadata, decided as edgeseg.load decides it.
// Boxes are taken as pixels (ONNX exports); set boxes_normalized for TFLite exports. Throws
// InvalidArgument saying what was found and what fits when the outputs are not a YOLO-seg head
// or could be read two ways.
YoloLayout yolo_layout(const std::vector<std::vector<int64_t>>& output_shapes,
                       const std::vector<int64_t>& input_shape, const Metadata& metadata);

// Class names of a metadata value in Ultralytics' form, a Python dict literal
// "{0: 'person', 1: 'bicycle'}" (keys 0..n-1 in order), or a list "['a', 'b']". Throws
// InvalidArgument for anything else.
std::vector<std::string> parse_names(const std::string& value);

// The whole postprocess of one image: decode, suppress (opt.nms), unletterbox, masks.
Instances postprocess_yolo(const YoloLayout& layout, const std::vector<Tensor>& outputs,
                           const Letterbox& lb, const PostprocessOptions& opt);

// The decode settings for a suppression: box NMS runs inside the decoder (Ultralytics' exact
// pipeline); any other kind takes every candidate above conf, best first (IoU 1 suppresses
// nothing), at most pre_nms_topk, and suppresses them in finish_yolo.
DecodeOptions decode_options_for(const PostprocessOptions& opt, int64_t num_classes);

// What every YOLO-style head does after its decoder (also the NPU split heads of split.hpp):
// the suppression of opt.nms (none for kBox: the decoder did it), boxes back to source pixels,
// masks from the prototypes, instances with empty masks dropped. `candidates` are in input pixels
// as decoded with decode_options_for(opt).
Instances finish_yolo(Detections&& candidates, const ProtoView& prototypes, const Letterbox& lb,
                      const PostprocessOptions& opt);

}  // namespace edgeseg
