// edgeseg core: instance-segmentation postprocessing as pure functions over plain buffers.
//
// Nothing here knows about Python. Every function validates its arguments and throws
// edgeseg::InvalidArgument with a message meant for the end user; the bindings turn that into
// a Python ValueError. Validation happens once at each entry point, before any arithmetic on
// caller-given sizes (which is done without overflow), so the inner loops need no checks. Limits
// that follow from the result types: image, model-input and prototype sides and num_classes are
// at most 2^31 - 1 (crops are int32 rects, class ids int32).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace edgeseg {

struct InvalidArgument : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Element types. kInt32 / kInt64 are index tensors (class labels of end-to-end exports): only
// postprocess_dets reads them; every decoder and mask assembler refuses them.
enum class DType : uint8_t { kFloat32, kInt8, kUInt8, kInt32, kInt64 };

// Affine quantization of a tensor: real = (q - zero_point) * scale. Identity for float tensors.
// Entry points require zero_point within the data type's range (so q - zero_point cannot overflow
// int) and a positive scale with 255 * scale finite (so no real value is inf or NaN).
struct Quant {
  float scale = 1.f;
  int32_t zero_point = 0;
};

// Real value of one raw value, dequantized in float32 as the reference does.
inline float real(float v, const Quant&) { return v; }
inline float real(int8_t v, const Quant& q) {
  return static_cast<float>(v - q.zero_point) * q.scale;
}
inline float real(uint8_t v, const Quant& q) {
  return static_cast<float>(v - q.zero_point) * q.scale;
}

// Real value of element `i` of a buffer of `dtype`.
inline float load(const void* data, DType dtype, int64_t i, const Quant& q) {
  switch (dtype) {
    case DType::kInt8:
      return real(static_cast<const int8_t*>(data)[i], q);
    case DType::kUInt8:
      return real(static_cast<const uint8_t*>(data)[i], q);
    case DType::kInt32:
      return static_cast<float>(static_cast<const int32_t*>(data)[i]);
    case DType::kInt64:
      return static_cast<float>(static_cast<const int64_t*>(data)[i]);
    default:
      return static_cast<const float*>(data)[i];
  }
}

// A read-only 2-D view of float32, int8 or uint8 data; strides are in elements, so transposed
// layouts are free. Quantized data is read through `quant`.
struct View2D {
  const void* data = nullptr;
  DType dtype = DType::kFloat32;
  int64_t rows = 0, cols = 0;
  int64_t stride_row = 0, stride_col = 0;
  Quant quant;
  float at(int64_t r, int64_t c) const {
    return load(data, dtype, r * stride_row + c * stride_col, quant);
  }
};

// A read-only 3-D view of prototypes: (channel, y, x) with element strides (NCHW or NHWC data).
struct ProtoView {
  const void* data = nullptr;
  DType dtype = DType::kFloat32;
  int64_t channels = 0, height = 0, width = 0;
  int64_t stride_c = 0, stride_y = 0, stride_x = 0;
  Quant quant;
};

struct DecodeOptions {
  float conf = 0.25f;            // keep candidates whose best class score is strictly above this
  float iou = 0.7f;              // suppress boxes whose IoU with a kept box is strictly above this
  int64_t max_det = 300;         // detections kept after NMS
  int64_t pre_nms_topk = 30000;  // candidates entering NMS, highest scores first
  bool agnostic = false;         // NMS across classes instead of within each class
  std::vector<uint8_t> class_allowed;  // empty: every class; else one flag per class
  // Box coordinates are multiplied by these (the input width and height for models whose boxes
  // are normalized to 0..1, as TFLite exports are).
  float box_scale_x = 1.f, box_scale_y = 1.f;
};

// Detections in model-input pixels, sorted by descending score.
struct Detections {
  std::vector<float> boxes;      // N x 4, x1 y1 x2 y2
  std::vector<float> scores;     // N
  std::vector<int32_t> classes;  // N
  std::vector<float> coeffs;     // N x num_coeffs
  int64_t num_coeffs = 0;
  int64_t size() const { return static_cast<int64_t>(scores.size()); }
};

// Raw YOLOv8/YOLO11-seg head: `pred` has rows = 4 + num_classes + num_coeffs features
// (cx, cy, w, h, class scores, mask coefficients) and cols = anchors. Quantized predictions are
// thresholded in the quantized domain; only surviving candidates are dequantized. With `coeffs`
// (rows = num_coeffs, cols = anchors), the coefficients come from that tensor and `pred` holds
// only 4 + num_classes rows (EdgeFirst's two-way split). With `objectness` (YOLOv5 / YOLOv7-seg),
// row 4 is the objectness and the classes follow it (4 + 1 + num_classes + num_coeffs rows):
// anchors need objectness > conf, and their score is objectness x best class probability.
Detections decode_yolo(const View2D& pred, int64_t num_classes, const DecodeOptions& opt,
                       const View2D* coeffs = nullptr, bool objectness = false);

// End-to-end head (NMS inside the graph): rows = detections, cols = x1 y1 x2 y2 score class coeffs.
// Only the score threshold, class filter and max_det apply; rows keep their order.
Detections decode_yolo_e2e(const View2D& rows, int64_t num_classes, const DecodeOptions& opt);

// Greedy NMS. Returns indices into the inputs of kept boxes, by descending score (ties: lower
// index first), at most max_det of them.
std::vector<int64_t> nms(const float* boxes, const float* scores, const int32_t* classes, int64_t n,
                         float iou, int64_t max_det, bool agnostic);

// Greedy NMS over candidates already ordered by descending score: `order` lists them, n indices
// into boxes/classes, each in [0, n).
std::vector<int64_t> nms_ordered(const float* boxes, const int32_t* classes, const int64_t* order,
                                 int64_t n, float iou, int64_t max_det, bool agnostic);

// How an image is fitted into the model input; each family's preprocessing uses one.
enum class Resize : uint8_t {
  kCentered,   // aspect kept, centred, padded on all sides (Ultralytics' LetterBox)
  kKeepRatio,  // aspect kept, top-left, padded bottom-right (MMDetection's Resize + Pad)
  kStretch,    // resized to the input exactly, aspect not kept (YOLACT, SSD)
};

// How a source image of (src_h, src_w) sits inside a model input of (dst_h, dst_w): resized to
// (new_h, new_w) (gains new/src per axis) and padded by (pad_top, pad_left). The rounding
// matches each reference (see make_letterbox), so boxes and masks land on the same pixels.
struct Letterbox {
  int64_t src_h = 0, src_w = 0, dst_h = 0, dst_w = 0;
  int64_t new_h = 0, new_w = 0, pad_top = 0, pad_left = 0;
  Resize resize = Resize::kCentered;
};
Letterbox make_letterbox(int64_t src_h, int64_t src_w, int64_t dst_h, int64_t dst_w,
                         Resize resize = Resize::kCentered);

// Maps boxes from model-input pixels back to source pixels and clips them to the source image.
void unletterbox_boxes(float* boxes, int64_t n, const Letterbox& lb);

struct MaskOptions {
  bool soft = false;       // also return sigmoid probabilities inside each box
  bool drop_empty = true;  // drop instances whose mask has no pixel (as the reference does)
};

// Masks for N detections, each cropped to its box at source resolution and bit-packed by row:
// a crop of width w and height h takes ceil(w / 8) * h bytes, pixel x of a row in bit x % 8
// (lowest first) of byte x / 8. Padding bits are zero.
struct Masks {
  std::vector<int64_t> keep;          // indices of the detections that have a mask
  std::vector<int32_t> rects;         // K x 4: x0, y0, width, height of each crop in source pixels
  std::vector<int64_t> areas;         // K: pixels set in each mask
  std::vector<int64_t> offsets;       // K + 1: start of each crop in `bits`
  std::vector<uint8_t> bits;          // the packed crops
  std::vector<int64_t> prob_offsets;  // K + 1: start of each crop in `probs`
  std::vector<float> probs;           // row-major crops of probabilities (soft masks only)
};

// Largest prototype map side assemble_masks accepts (YOLO's are a quarter of the input: 160 at
// 640).
constexpr int64_t kMaxPrototypeSide = int64_t{1} << 12;

// coefficients (N x C) x prototypes (C x h x w) for the given detections only, thresholded at
// logit 0, with the letterbox undone and the result upsampled to source pixels inside each box.
// `boxes` are in source pixels (after unletterbox_boxes); `input_h/w` is the model input size.
Masks assemble_masks(const ProtoView& protos, const float* coeffs, const float* boxes, int64_t n,
                     int64_t input_h, int64_t input_w, int64_t src_h, int64_t src_w,
                     const MaskOptions& opt);

// COCO run-length counts (column-major, starting with a run of zeros) of one box-cropped,
// bit-packed mask (as in Masks) placed in an image of (image_h, image_w).
std::vector<uint32_t> rle_counts(const uint8_t* crop, int64_t x0, int64_t y0, int64_t w, int64_t h,
                                 int64_t image_h, int64_t image_w);

// COCO's compact string form of run-length counts (as pycocotools' rleToString).
std::string rle_to_string(const std::vector<uint32_t>& counts);

}  // namespace edgeseg
