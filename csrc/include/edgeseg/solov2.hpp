// SOLOv2 decoding in the core: category grids + dynamic kernels + the mask feature -> instances
// with box-cropped bit-packed masks at source resolution.
//
// The reference is MMDetection's SOLOV2Head.predict_by_feat / _predict_by_feat_single (v3; v2's
// get_results is the same) with mask_matrix_nms: sigmoid and 2x2 point NMS on each level's
// category grid, score threshold, dynamic 1x1 convolution of the mask feature by each survivor's
// kernel, sigmoid, binarize, area filter (pixels > the level's stride), rescoring by the mean
// probability inside the mask, Matrix NMS, then the probabilities of the kept instances resized
// to the padded input, cropped to the image and resized to the source image, thresholded.
#pragma once

#include <cstdint>
#include <vector>

#include "edgeseg/core.hpp"

namespace edgeseg {

// One pyramid level: category scores (classes, S, S) and kernels (E, S, S) as strided views
// (ProtoView: channel, y, x), and the level's stride (the minimum mask area, in mask-feature
// pixels, as the reference compares it). Layouts that flatten the levels ([G, C] and [G, E]) are
// the same views with other strides.
struct Solov2Level {
  ProtoView cate;
  ProtoView kernel;
  float stride = 8.f;
};

enum class Solov2Nms : uint8_t {
  kMatrix,  // Matrix NMS (the reference): scores decayed by mask IoU, then filter_thr
  kMask,    // greedy NMS by mask IoU > iou (at mask-feature resolution)
  kFast,    // Fast NMS by mask IoU: dropped if any higher-scored candidate overlaps > iou
  kBox,     // greedy NMS by the IoU of the masks' boxes > iou
};

struct Solov2Options {
  float score_thr = 0.1f;    // category score (after sigmoid and point NMS) strictly above
  float mask_thr = 0.5f;     // mask probability strictly above which a pixel is in the mask
  float filter_thr = 0.05f;  // Matrix NMS: decayed score at least this
  int64_t nms_pre = 500;     // candidates entering NMS, highest rescored first
  int64_t max_det = 100;     // instances kept
  bool cate_logits = true;   // category scores are logits (sigmoid applied here)
  bool gaussian = true;      // Matrix NMS kernel: Gaussian, else linear
  float sigma = 2.f;         // Gaussian kernel's sigma
  Solov2Nms nms = Solov2Nms::kMatrix;
  float iou = 0.5f;         // the other NMS kinds' threshold
  bool agnostic = false;    // suppress across classes
  int64_t mask_stride = 4;  // input pixels per mask-feature pixel (the reference's upsampling)
  bool soft = false;        // also return probabilities inside each crop
  std::vector<uint8_t> class_allowed;  // empty: every class; else one flag per class
};

// Instances by descending score; masks as in Masks (crops of the mask's own bounding box, which
// is also the instance's box). An instance whose mask comes out empty at source resolution (all
// of it in the padding) is dropped: it has no box.
struct Solov2Instances {
  std::vector<float> boxes;      // K x 4, x1 y1 x2 y2 in source pixels (the mask's extent)
  std::vector<float> scores;     // K
  std::vector<int32_t> classes;  // K
  Masks masks;                   // keep = 0..K-1
};

// `mask_feat` is (E, h, w) float32; every level's kernel has E channels and every category view
// the same number of classes. `lb` says where the source image sits in the model input.
Solov2Instances decode_solov2(const std::vector<Solov2Level>& levels, const ProtoView& mask_feat,
                              const Letterbox& lb, const Solov2Options& opt);

}  // namespace edgeseg
