// Point-prior dense heads with per-instance dynamic mask networks (RTMDet-Ins; CondInst shares
// the mask network): candidate decoding and NMS over the raw per-level maps, and each
// survivor's mask computed only inside its box, straight into box-cropped bit-packed crops.
#pragma once

#include <cstdint>
#include <vector>

#include "edgeseg/core.hpp"

namespace edgeseg {

// The per-instance mask network: `num_layers` dynamic 1x1 convolutions over the input
// [relative x, relative y, the mask feature's `feat_channels` channels], `channels` wide, ReLU
// between layers, one output channel (the mask logit).
struct DynConvNet {
  int64_t feat_channels = 8;  // RTMDet-Ins: num_prototypes
  int64_t channels = 8;       // dyconv_channels
  int64_t num_layers = 3;     // num_dyconvs
};

// Parameters per instance, laid out as MMDetection's parse_dynamic_params splits them: the
// weights of every layer (output-major), then the biases of every layer. 169 for the defaults.
// Throws for sizes out of range (every count >= 1, at most 4096 channels and 64 layers).
int64_t dynconv_num_params(const DynConvNet& net);

// One level of a point-prior head, as channel-planar float32 maps of h x w locations.
struct PointLevel {
  const float* cls = nullptr;     // num_classes planes of class logits
  const float* box = nullptr;     // 4 planes: distances left, top, right, bottom (input pixels)
  const float* params = nullptr;  // num_params planes of instance parameters
  int64_t h = 0, w = 0;
  int64_t stride =
      0;  // the level's prior at (i, j) is ((j + offset) * stride, (i + offset) * stride)
};

struct PointDecodeOptions {
  float conf = 0.3f;        // keep (location, class) pairs whose sigmoid score is above this
  float iou = 0.65f;        // class-aware (or agnostic) NMS: IoU strictly above suppresses
  int64_t max_det = 300;    // detections kept after NMS
  int64_t nms_pre = 30000;  // per level: candidates kept by score before NMS (mmdet's nms_pre)
  bool agnostic = false;    // NMS across classes
  std::vector<uint8_t> class_allowed;  // empty: every class; else one flag per class
  float offset = 0.f;                  // prior offset in strides (MlvlPointGenerator: 0 for RTMDet)
  float clip_w = 0.f, clip_h = 0.f;    // boxes clamped to [0, clip] (the model input), > 0
};

// Detections in model-input pixels by descending score, with what their masks need.
struct PointDetections {
  std::vector<float> boxes;      // N x 4, x1 y1 x2 y2
  std::vector<float> scores;     // N
  std::vector<int32_t> classes;  // N
  std::vector<float> params;     // N x num_params: the instance's mask-network parameters
  std::vector<float> priors;     // N x 3: prior x, y (input pixels) and its level's stride
  int64_t num_params = 0;
  int64_t size() const { return static_cast<int64_t>(scores.size()); }
};

// RTMDet(-Ins)'s predict_by_feat: sigmoid scores of every (location, class) pair above conf,
// the nms_pre best per level, distance boxes decoded from the priors and clamped to the input,
// degenerate boxes (width or height <= 0) dropped, NMS, max_det.
PointDetections decode_points(const std::vector<PointLevel>& levels, int64_t num_classes,
                              int64_t num_params, const PointDecodeOptions& opt);

struct DynMaskOptions {
  DynConvNet net;
  int64_t feat_stride = 8;      // the mask feature's stride in input pixels
  float coord_offset = 0.f;     // mask-feature location (i, j) is at ((j + offset) * stride, ...)
  float coord_scale = 8.f;      // relative coordinates are divided by the prior's stride times this
  float mask_threshold = 0.5f;  // probability above which a pixel is in the mask
  bool soft = false;            // also return probabilities inside each box (threshold 0.5 only)
  bool drop_empty = true;       // drop instances whose mask has no pixel
};

// Masks of n instances, the MMDetection RTMDet-Ins way but only inside each box: the dynamic
// network's logits at mask-feature resolution, upsampled feat_stride times (bilinear) to the
// model input, resized (bilinear) to ceil(input / scale) and cut to the source image (mmdet's
// _bbox_mask_post_process, whose row count uses the width scale), thresholded. `feat` is
// float32 (channels, h, w) covering the input exactly (h * feat_stride = input height);
// `params` n x dynconv_num_params(net); `priors` n x 3 (x, y, stride) in input pixels; `boxes`
// n x 4 in source pixels; `lb` a keep_ratio Letterbox.
Masks dynamic_masks(const ProtoView& feat, const float* params, const float* priors,
                    const float* boxes, int64_t n, const Letterbox& lb, const DynMaskOptions& opt);

}  // namespace edgeseg
