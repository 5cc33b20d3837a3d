// edgeseg core: multi-object tracking (ByteTrack-style, with mask association) and linear
// assignment.
//
// The tracker keeps a constant-velocity Kalman filter per track and associates each frame's
// detections in three stages, as ByteTrack does; the similarity of a track and a detection is the
// IoU of their boxes or, when both have a mask, of their bit-packed mask crops (the track's last
// mask shifted by its predicted motion). Like the rest of the core it takes plain buffers, checks
// every argument and throws edgeseg::InvalidArgument with a message for the end user.
//
// The rules, precisely (tests/track_reference.py transcribes them in numpy):
// 1. Predict every track (tracked, lost, tentative); apply the optional 2x3 camera warp to the
//    predicted means and covariances; drop tracks whose state left the representable range.
// 2. Stage 1: detections with score >= high_thresh against tracked + lost confirmed tracks;
//    a pair may match when sim >= match_iou, where sim is the IoU, times the detection's score
//    when fuse_score. Matched lost tracks are found again, with their id.
// 3. Stage 2: detections with low_thresh <= score < high_thresh against the tracked (not lost)
//    confirmed tracks left over; a pair may match when IoU >= second_match_iou (never fused).
//    Tracked tracks still unmatched become lost.
// 4. Stage 3: tentative tracks against the high detections left over; a pair may match when
//    sim >= unconfirmed_match_iou (fused as in stage 1). Unmatched tentative tracks are removed:
//    activation needs consecutive hits.
// 5. High detections still unmatched with score >= new_track_thresh start a tentative track (one
//    hit). A tentative track is confirmed, and takes the next id (1, 2, 3, ... never reused until
//    reset()), as soon as it has min_hits hits: with min_hits = 1 at once. A detection whose box
//    overlaps, by IoU > duplicate_iou, one already given to a track this frame (by a stage, or as
//    a new track: detections in input order) starts none: it is the same object detected twice
//    (class-aware NMS keeps one box per class), and a second track would count it twice.
// 6. Lost tracks not matched for more than lost_frames consecutive frames are removed: a track
//    may be found again after up to lost_frames frames without a detection.
// Each stage picks the matching that maximizes the sum of (sim - threshold) over its pairs (see
// linear_assignment); a pair must also overlap (sim > 0), so a threshold of 0 does not match
// strangers. Association is class-agnostic; every track keeps a vote of the classes it
// was matched with and reports the most frequent (ties: the most recently seen).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "edgeseg/core.hpp"

namespace edgeseg {

struct TrackerOptions {
  float high_thresh = 0.5f;            // stage 1 takes detections scoring at least this
  float low_thresh = 0.1f;             // stage 2 takes detections in [low_thresh, high_thresh)
  float new_track_thresh = 0.6f;       // unmatched high detections scoring this start tracks
  float match_iou = 0.2f;              // stage 1: least (fused) similarity of a match
  float second_match_iou = 0.5f;       // stage 2: least IoU of a match
  float unconfirmed_match_iou = 0.3f;  // stage 3: least (fused) similarity of a match
  float duplicate_iou = 0.8f;          // no new track for a box overlapping a tracked one more
  int64_t lost_frames = 30;            // frames a lost track waits to be found again
  int64_t min_hits = 1;                // consecutive matched frames that confirm a track
  bool use_masks = true;               // mask IoU where both sides have a mask, else box IoU
  bool fuse_score = true;              // stages 1 and 3 use IoU * detection score
};

// n bit-packed mask crops, one per detection, laid out as in edgeseg::Masks: rects (n x 4: x0,
// y0, width, height in image pixels), offsets (n + 1 byte offsets into bits), bits (bits_size
// bytes; a crop of width w and height h takes ceil(w / 8) * h bytes, pixel x of a row in bit
// x % 8 of byte x / 8). A crop with no pixel set counts as "no mask" (box IoU is used).
struct MaskCrops {
  const int32_t* rects = nullptr;
  const int64_t* offsets = nullptr;
  const uint8_t* bits = nullptr;
  int64_t bits_size = 0;
};

// Per input detection: the id of the confirmed track it belongs to, else -1 (a tentative track,
// or not matched and no track started), and that track's voted class (-1 where the id is -1).
struct TrackUpdate {
  std::vector<int64_t> ids;
  std::vector<int32_t> classes;
};

struct TrackState {
  int64_t id = 0;
  float box[4] = {0, 0, 0, 0};    // x1 y1 x2 y2 of the filtered state (the prediction while lost)
  float score = 0;                // score of the last matched detection
  int32_t class_id = 0;           // the voted class
  int64_t hits = 0;               // frames with a matched detection
  int64_t age = 0;                // frames since the track started (1 on its first frame)
  int64_t time_since_update = 0;  // frames since the last match (0: matched this frame)
  bool lost = false;
};

// Not thread-safe: one Tracker per stream (concurrent calls on one Tracker race).
class Tracker {
 public:
  explicit Tracker(const TrackerOptions& options);
  ~Tracker();
  Tracker(Tracker&&) noexcept;
  Tracker& operator=(Tracker&&) noexcept;
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  // One frame of n detections: boxes (n x 4, x1 y1 x2 y2, finite, x1 <= x2, y1 <= y2, |v| <=
  // 2^31), scores (n, in [0, 1]), classes (n, >= 0; null: all 0), masks (n crops; null: none)
  // and warp (2x3 row-major affine from the previous frame's pixels to this frame's; null: none).
  // Arguments are checked before any state changes: a throwing call leaves the tracker as it was.
  TrackUpdate update(const float* boxes, const float* scores, const int32_t* classes, int64_t n,
                     const MaskCrops* masks, const float* warp);
  // Confirmed tracks, tracked and lost, by id.
  std::vector<TrackState> tracks() const;
  // Forgets every track and restarts frames and ids (the next id is 1 again).
  void reset();
  // Frames seen since construction or reset().
  int64_t frame() const;
  const TrackerOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Checks TrackerOptions (the Tracker constructor calls it).
void check_tracker_options(const TrackerOptions& options);

// Minimum-cost assignment of a rows x cols row-major cost matrix with a cost limit: pairs costing
// more than max_cost are never matched, and the matching minimizes the sum of (cost - max_cost)
// over its pairs, so a pair costing exactly max_cost may be left out. Costs may be +inf
// (forbidden), not NaN or -inf; max_cost must be finite. Returns, per row, the matched column or
// -1.
std::vector<int64_t> linear_assignment(const float* cost, int64_t rows, int64_t cols,
                                       float max_cost);

// IoU of every pair of two sets of bit-packed mask crops: an na x nb row-major matrix, with crop i
// of `a` moved by (shifts[2i], shifts[2i + 1]) pixels (shifts null: not moved, else each within
// +-2^32). An empty crop has IoU 0 with everything. For tests and tools.
std::vector<double> mask_iou(const MaskCrops& a, int64_t na, const MaskCrops& b, int64_t nb,
                             const int64_t* shifts);

namespace detail {
// Sparse form used by the tracker: `weight` of each allowed (row, col) edge is its cost minus the
// limit (<= 0). Returns per row the matched column or -1.
struct Edge {
  int64_t row, col;
  double weight;
};
std::vector<int64_t> assign_edges(int64_t rows, int64_t cols, const std::vector<Edge>& edges);
}  // namespace detail

}  // namespace edgeseg
