// edgeseg core: the whole postprocess of a model in one call, from the raw output buffers of one
// image and its letterbox to instances in source pixels with box-cropped bit-packed masks, for
// the Ultralytics YOLO family (raw head, end-to-end head, YOLOv5 / YOLOv7 anchors), its NPU
// split heads (Rockchip RKNN, Hailo: one tensor per stride and role, each with its own
// quantization), YOLACT, RTMDet-Ins, SOLOv2 and end-to-end dets / labels / masks exports (Mask
// R-CNN, MMDeploy, torchvision). The Python heads call the same functions, so C++ and Python users
// get the same instances.
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
  bool soft_masks = false;      // also keep sigmoid probabilities inside each box (Masks::probs)
  float mask_threshold = 0.5f;  // families with mask probabilities (RTMDet-Ins): pixel is in above
};

// Instances of one image in source pixels, by descending score, each with its mask (masks.rects[4
// i..] is the crop of instance i; masks.keep lists which decoded detections they were). YOLO drops
// instances whose mask is empty, as Ultralytics does; YOLACT keeps them, as yolact does.
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

// A YOLO head split for NPUs (split.hpp): per stride as Rockchip's rknn_model_zoo and Hailo's
// model zoo export it (each level names its outputs by index; every per-level tensor of one image
// is [C, H, W] (NCHW) or [H, W, C] (levels_nhwc)), or per anchor as Qualcomm AI Hub and EdgeFirst
// export it; each tensor in its own dtype and quantization.
struct SplitLayout {
  enum class Kind : uint8_t {
    kDfl,      // YOLOv8 / YOLO11: DFL box logits, class probabilities, coefficients, score sum
    kAnchors,  // YOLOv5-seg: per-anchor predictions (x y w h obj classes) and coefficients
    kScored,   // Qualcomm AI Hub: boxes [N, 4] x1y1x2y2, scores [N], class ids [N], coeffs [N, K]
    kTwoWay,   // EdgeFirst: [4 + classes, N] (cx cy w h, scores) and coefficients [K, N]
  };
  struct Level {
    int64_t boxes = -1;      // kDfl: 4 x bins box logits; kAnchors: the predictions
    int64_t scores = -1;     // kDfl: class probabilities (kAnchors: unused)
    int64_t coeffs = -1;     // mask coefficients
    int64_t score_sum = -1;  // kDfl, optional (-1: none): RKNN's clipped class-score sum
    int64_t grid_h = 0, grid_w = 0;
    float stride = 0.f;          // input pixels per cell
    std::vector<float> anchors;  // kAnchors: (w, h) pairs in input pixels
  };
  Kind kind = Kind::kDfl;
  int64_t num_classes = 0;
  std::vector<Level> levels;  // finest first
  bool levels_nhwc = false;
  int64_t prototypes = -1;  // index of the prototypes output
  bool prototypes_nhwc = false;
  // kScored and kTwoWay: per-anchor outputs (no levels); class ids int32, int64 or float.
  int64_t boxes = -1, scores = -1, classes = -1, coeffs = -1;
  bool anchor_major = false;      // kTwoWay: [N, features] instead of [features, N]
  bool boxes_normalized = false;  // kTwoWay: boxes in 0..1 of the input
};

// The whole postprocess of one image of a split head: decode_yolo_split, decode_yolov5_split,
// decode_yolo_scored or decode_yolo with separate coefficients, then finish_yolo.
Instances postprocess_yolo_split(const SplitLayout& layout, const std::vector<Tensor>& outputs,
                                 const Letterbox& lb, const PostprocessOptions& opt);

// Which output of a YOLACT export is which (family "yolact"): decoded boxes [N, 4] (x1 y1 x2 y2
// fractions of the input) or SSD offsets against priors (an output [N, 4] or [1, N, 4], or host
// priors); class probabilities [N, 1 + classes] (background first); coefficients [N, K];
// prototypes [h, w, K] (NHWC, yolact's own order) or [K, h, w].
struct YolactLayout {
  int64_t boxes = 0;
  bool boxes_decoded = true;  // false: `boxes` holds SSD offsets (variances 0.1, 0.2)
  int64_t conf = 1, coeffs = 2, prototypes = 3;
  int64_t priors_output = -1;  // -1: priors from `priors` (or none, for decoded boxes)
  std::vector<float> priors;   // host priors, N x 4 cx cy w h fractions (yolact's make_priors)
  bool prototypes_nhwc = true;
  int64_t top_k = 200;  // candidates per class entering Fast NMS
};

// The whole postprocess of one image of a YOLACT export (plain resize: `lb` is a kStretch
// letterbox): decode_yolact (opt.nms kFast, the reference, or kBox), yolact_masks, boxes to
// source pixels as yolact's sanitize_coordinates. The priors output, if any, is given as the
// model returns it (it has no batch dimension to drop).
Instances postprocess_yolact(const YolactLayout& layout, const std::vector<Tensor>& outputs,
                             const Letterbox& lb, const PostprocessOptions& opt);

// Which output of a raw RTMDet-Ins export is which (family "rtmdet"): per level (finest first)
// class logits [C, h, w], box distances [4, h, w] (left, top, right, bottom, input pixels) and
// kernels [P, h, w], float32; the mask feature [M, H/s0, W/s0] at the first level's stride.
struct RtmdetLayout {
  std::vector<int64_t> cls, box, kernel;  // output indices per level
  std::vector<int64_t> strides;           // each level's stride in input pixels
  int64_t mask_feat = -1;
  int64_t dyconv_channels = 8, num_dyconvs = 3;  // the per-instance mask network
};

// The whole postprocess of one image of a raw RTMDet-Ins export (keep-ratio letterbox; nms kBox,
// the reference): decode_points (opt.pre_nms_topk per level, as mmdet's nms_pre), boxes to source
// pixels, dynamic_masks only inside each box (every detection kept, empty mask or not, as mmdet
// does).
Instances postprocess_rtmdet(const RtmdetLayout& layout, const std::vector<Tensor>& outputs,
                             const Letterbox& lb, const PostprocessOptions& opt);

// Which output of a raw SOLOv2 export is which (family "solov2"): per level category scores
// [C, S, S] and kernels [E, S, S] (solov2_levels), or all levels flattened point by point,
// [G, C] and [G, E] with G = sum of S^2 (solov2_flat, one index in `cate` and `kernel`); the mask
// feature [E, H / mask_stride, W / mask_stride]; float32. Settings as MMDetection's test_cfg.
struct Solov2Layout {
  bool flat = false;
  std::vector<int64_t> cate, kernel;  // output indices: one per level, or one each (flat)
  int64_t mask_feat = -1;
  std::vector<int64_t> grids;    // S of each level
  std::vector<int64_t> strides;  // each level's stride (its minimum mask area)
  bool cate_logits = true;       // category scores are logits (else probabilities)
  int64_t mask_stride = 4;
  int64_t nms_pre = 500;  // candidates entering Matrix NMS (further capped by pre_nms_topk)
  float filter_thr = 0.05f;
  bool gaussian = true;  // Matrix NMS kernel (else linear)
  float sigma = 2.f;
};

// The whole postprocess of one image of a SOLOv2 export: decode_solov2 (opt.nms: kMatrix, the
// reference, or kMask, kFast, kBox by mask IoU / mask boxes).
Instances postprocess_solov2(const Solov2Layout& layout, const std::vector<Tensor>& outputs,
                             const Letterbox& lb, const PostprocessOptions& opt);

// Which output of an end-to-end dets / labels / masks export is which (family "dets"). Tensors of
// one image: MMDeploy's `dets` [K, 5] (x1 y1 x2 y2 score, input pixels) or torchvision's `boxes`
// [K, 4] with `scores` [K]; `labels` [K] (int64, int32 or float); `masks` [K, M, M] box-relative
// probabilities (RoI, pasted) or [K, H, W] at the input size (full frame, cropped), [K, 1, ...]
// accepted, float32 probabilities or uint8 binary masks.
struct DetsLayout {
  int64_t boxes = 0;
  int64_t scores = -1;  // -1: the score is the fifth column of `boxes` (MMDeploy)
  int64_t labels = 1, masks = 2;
  bool roi_masks = true;           // box-relative masks pasted into their boxes, else full frame
  bool torchvision_paste = false;  // RoI paste as torchvision (else MMDetection / MMDeploy)
  bool inclusive = true;           // full frame: a probability equal to the threshold is in
  int64_t num_classes = 0;
};

// The whole postprocess of one image of an end-to-end export: rows with score > opt.conf (as
// MMDeploy's SDK), the class filter, at most opt.max_det, boxes to source pixels, masks pasted or
// cropped at source resolution (threshold opt.mask_threshold); full-frame rows without a box
// (SOLOv2 writes zeros) take their mask's extent. NMS ran in the graph: opt.nms does not apply.
Instances postprocess_dets(const DetsLayout& layout, const std::vector<Tensor>& outputs,
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
