// ByteTrack-style multi-object tracker with mask association (the rules are in track.hpp).
#include "edgeseg/track.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "checks.hpp"
#include "packed_masks.hpp"

namespace edgeseg {
namespace {

using detail::check_masks;
using detail::pack;
using detail::packed_iou;
using detail::PackedMask;

// Box coordinates beyond +-2^31 are refused: masks are int32 rects, so no image is larger, and
// the bound keeps every product of coordinates far inside double's exact range.
constexpr double kMaxCoord = 2147483648.0;
// A track whose predicted state leaves +-2^40 (only a long run of extreme warps gets there) is
// dropped: it can match nothing, and its numbers would head for inf and NaN.
constexpr double kMaxState = 1099511627776.0;
// Kalman noise, as a fraction of the box's width or height (ByteTrack / BoT-SORT's values).
constexpr double kStdPos = 1.0 / 20.0;
constexpr double kStdVel = 1.0 / 160.0;
// Noise scale of a zero-width or zero-height box: without a floor its variances would be 0 and
// the innovation covariance singular.
constexpr double kMinScale = 1e-3;
// The 2x2 part of a warp: a camera moves little between two frames; entries past this are a
// broken estimate, not motion.
constexpr double kMaxWarpLinear = 16.0;
constexpr int64_t kMaxShift = int64_t{1} << 32;

double noise_scale(double v) { return std::max(std::fabs(v), kMinScale); }

// Grows an extent (x1 y1 x2 y2) to cover a mask's rect moved by (dx, dy).
void extend(double* ext, const PackedMask& m, int64_t dx, int64_t dy) {
  ext[0] = std::min(ext[0], static_cast<double>(m.x0 + dx));
  ext[1] = std::min(ext[1], static_cast<double>(m.y0 + dy));
  ext[2] = std::max(ext[2], static_cast<double>(m.x0 + dx + m.w));
  ext[3] = std::max(ext[3], static_cast<double>(m.y0 + dy + m.h));
}

// x1 y1 x2 y2 boxes in double. Degenerate boxes (zero or negative extent) overlap nothing.
double box_iou(const double* a, const double* b) {
  const double w = std::min(a[2], b[2]) - std::max(a[0], b[0]);
  const double h = std::min(a[3], b[3]) - std::max(a[1], b[1]);
  if (!(w > 0.0 && h > 0.0)) return 0.0;
  const double inter = w * h;
  const double uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return uni > 0.0 ? inter / uni : 0.0;
}

// ---- Kalman filter on (cx, cy, w, h) and their velocities, covariances in double ------------

struct Kalman {
  double mean[8];
  double cov[64];
};

void kalman_init(Kalman* k, const double* z) {
  const double w = noise_scale(z[2]), h = noise_scale(z[3]);
  const double std[8] = {2 * kStdPos * w,  2 * kStdPos * h,  2 * kStdPos * w,  2 * kStdPos * h,
                         10 * kStdVel * w, 10 * kStdVel * h, 10 * kStdVel * w, 10 * kStdVel * h};
  for (int i = 0; i < 4; ++i) {
    k->mean[i] = z[i];
    k->mean[i + 4] = 0.0;
  }
  std::fill(k->cov, k->cov + 64, 0.0);
  for (int i = 0; i < 8; ++i) k->cov[i * 9] = std[i] * std[i];
}

// Constant velocity: x += v. With F = [[I, I], [0, I]] and P = [[A, B], [C, D]] in 4x4 blocks,
// F P F^T = [[A + B + C + D, B + D], [C + D, D]]; noise scaled by the box before the step.
void kalman_predict(Kalman* k) {
  const double w = noise_scale(k->mean[2]), h = noise_scale(k->mean[3]);
  const double q[8] = {kStdPos * w, kStdPos * h, kStdPos * w, kStdPos * h,
                       kStdVel * w, kStdVel * h, kStdVel * w, kStdVel * h};
  for (int i = 0; i < 4; ++i) k->mean[i] += k->mean[i + 4];
  double* p = k->cov;
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      const double a = p[i * 8 + j], b = p[i * 8 + j + 4], c = p[(i + 4) * 8 + j],
                   d = p[(i + 4) * 8 + j + 4];
      p[i * 8 + j] = a + b + c + d;
      p[i * 8 + j + 4] = b + d;
      p[(i + 4) * 8 + j] = c + d;
    }
  }
  for (int i = 0; i < 8; ++i) p[i * 9] += q[i] * q[i];
}

// x' = T x (+ t on the centre), P' = T P T^T, where T rotates and scales the centre and its
// velocity by the warp's 2x2 part M and scales sizes and their velocities by sqrt(det M).
void kalman_warp(Kalman* k, const double* m) {
  const double s = std::sqrt(m[0] * m[4] - m[1] * m[3]);
  double t[64] = {};
  for (int b : {0, 4}) {  // centre and centre velocity
    t[b * 8 + b] = m[0];
    t[b * 8 + b + 1] = m[1];
    t[(b + 1) * 8 + b] = m[3];
    t[(b + 1) * 8 + b + 1] = m[4];
  }
  for (int i : {2, 3, 6, 7}) t[i * 9] = s;
  double mean[8], tp[64];
  for (int i = 0; i < 8; ++i) {
    double acc = 0.0;
    for (int j = 0; j < 8; ++j) acc += t[i * 8 + j] * k->mean[j];
    mean[i] = acc;
  }
  mean[0] += m[2];
  mean[1] += m[5];
  std::memcpy(k->mean, mean, sizeof mean);
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) {
      double acc = 0.0;
      for (int l = 0; l < 8; ++l) acc += t[i * 8 + l] * k->cov[l * 8 + j];
      tp[i * 8 + j] = acc;
    }
  }
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) {
      double acc = 0.0;
      for (int l = 0; l < 8; ++l) acc += tp[i * 8 + l] * t[j * 8 + l];
      k->cov[i * 8 + j] = acc;
    }
  }
}

// Measurement update with z = (cx, cy, w, h): S = H P H^T + R, K^T = S^-1 H P (Cholesky solve),
// x += K (z - H x), P -= K H P.
void kalman_update(Kalman* k, const double* z) {
  const double w = noise_scale(k->mean[2]), h = noise_scale(k->mean[3]);
  const double r[4] = {kStdPos * w, kStdPos * h, kStdPos * w, kStdPos * h};
  double l[16] = {};  // Cholesky factor of S (lower)
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j <= i; ++j) {
      double acc = k->cov[i * 8 + j] + (i == j ? r[i] * r[i] : 0.0);
      for (int m = 0; m < j; ++m) acc -= l[i * 4 + m] * l[j * 4 + m];
      // S is a covariance plus a positive diagonal: positive definite; the max only guards
      // against rounding turning a tiny pivot negative.
      l[i * 4 + j] = i == j ? std::sqrt(std::max(acc, 1e-300)) : acc / l[j * 4 + j];
    }
  }
  double x[32];  // K^T (4 x 8) = S^-1 (first 4 rows of P)
  for (int c = 0; c < 8; ++c) {
    double y[4];
    for (int i = 0; i < 4; ++i) {
      double acc = k->cov[i * 8 + c];
      for (int m = 0; m < i; ++m) acc -= l[i * 4 + m] * y[m];
      y[i] = acc / l[i * 4 + i];
    }
    for (int i = 3; i >= 0; --i) {
      double acc = y[i];
      for (int m = i + 1; m < 4; ++m) acc -= l[m * 4 + i] * x[m * 8 + c];
      x[i * 8 + c] = acc / l[i * 4 + i];
    }
  }
  double innov[4], hp[32];
  for (int i = 0; i < 4; ++i) innov[i] = z[i] - k->mean[i];
  std::memcpy(hp, k->cov, sizeof hp);  // first 4 rows of P
  for (int i = 0; i < 8; ++i) {
    double acc = 0.0;
    for (int m = 0; m < 4; ++m) acc += x[m * 8 + i] * innov[m];
    k->mean[i] += acc;
  }
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) {
      double acc = 0.0;
      for (int m = 0; m < 4; ++m) acc += x[m * 8 + i] * hp[m * 8 + j];
      k->cov[i * 8 + j] -= acc;
    }
  }
}

bool state_ok(const Kalman& k) {
  for (int i = 0; i < 8; ++i) {
    if (!(std::fabs(k.mean[i]) <= kMaxState)) return false;  // also false for NaN
  }
  for (int i = 0; i < 64; ++i) {
    if (!std::isfinite(k.cov[i])) return false;
  }
  return true;
}

struct Vote {
  int32_t class_id;
  int64_t count, last_frame;
};

struct Track {
  Kalman kf;
  int64_t id = 0;  // 0 while tentative
  bool lost = false;
  int64_t hits = 0, start_frame = 0, last_frame = 0;
  float score = 0.f;
  std::vector<Vote> votes;
  int32_t voted = 0;
  PackedMask mask;                      // the last matched detection's mask (empty: none)
  double mask_cx = 0.0, mask_cy = 0.0;  // the filtered centre when the mask was stored
  // Per frame: predicted box, the mask's shift to the predicted centre, and the extent of both
  // (a pair whose extents do not overlap has similarity 0 whichever IoU applies).
  double pred[4] = {0, 0, 0, 0};
  int64_t dx = 0, dy = 0;
  double ext[4] = {0, 0, 0, 0};
};

void center_size(const float* b, double* z) {
  z[0] = (static_cast<double>(b[0]) + b[2]) / 2.0;
  z[1] = (static_cast<double>(b[1]) + b[3]) / 2.0;
  z[2] = static_cast<double>(b[2]) - b[0];
  z[3] = static_cast<double>(b[3]) - b[1];
}

int64_t rounded_shift(double d) {
  // States are within +-2^40, so d is too; the clamp only keeps llround defined regardless.
  return std::llround(
      std::max(-static_cast<double>(kMaxShift), std::min(static_cast<double>(kMaxShift), d)));
}

}  // namespace

void check_tracker_options(const TrackerOptions& o) {
  const std::pair<const char*, float> unit[] = {
      {"high_thresh", o.high_thresh},           {"low_thresh", o.low_thresh},
      {"new_track_thresh", o.new_track_thresh}, {"match_iou", o.match_iou},
      {"second_match_iou", o.second_match_iou}, {"unconfirmed_match_iou", o.unconfirmed_match_iou},
      {"duplicate_iou", o.duplicate_iou}};
  for (const auto& [name, v] : unit) {
    if (!(v >= 0.f && v <= 1.f))
      throw InvalidArgument(std::string(name) + " must be in [0, 1], got " + std::to_string(v));
  }
  if (o.low_thresh > o.high_thresh)
    throw InvalidArgument("low_thresh (" + std::to_string(o.low_thresh) +
                          ") must not exceed high_thresh (" + std::to_string(o.high_thresh) + ")");
  if (o.lost_frames < 0)
    throw InvalidArgument("lost_frames must be >= 0, got " + std::to_string(o.lost_frames));
  if (o.min_hits < 1)
    throw InvalidArgument("min_hits must be >= 1, got " + std::to_string(o.min_hits));
}

struct Tracker::Impl {
  TrackerOptions opt;
  std::vector<Track> tracks;
  int64_t frame = 0, next_id = 1;
  // Per-frame scratch, kept to avoid reallocating every frame.
  std::vector<PackedMask> det_masks;
  std::vector<double> det_ext, col_ext;  // per detection / per column: extent of box and mask
  std::vector<int64_t> track_of;         // per detection: index into tracks, or -1
  std::vector<detail::Edge> edges;

  // Similarity of track t and detection d (before score fusion).
  double similarity(const Track& t, int64_t d, const double* det_box) const {
    if (opt.use_masks && !t.mask.empty() && d < static_cast<int64_t>(det_masks.size()) &&
        !det_masks[d].empty())
      return packed_iou(t.mask, t.dx, t.dy, det_masks[d]);
    return box_iou(t.pred, det_box);
  }

  // One association stage: edges between `rows` (track indices) and `cols` (detection indices)
  // whose (fused) similarity reaches `thresh`; returns per row the matched position in cols.
  std::vector<int64_t> associate(const std::vector<int64_t>& rows, const std::vector<int64_t>& cols,
                                 const std::vector<double>& det_boxes, const float* scores,
                                 float thresh, bool fuse) {
    edges.clear();
    const double th = thresh;
    col_ext.resize(4 * cols.size());
    for (size_t c = 0; c < cols.size(); ++c)
      std::copy_n(det_ext.data() + 4 * cols[c], 4, col_ext.data() + 4 * c);
    for (size_t r = 0; r < rows.size(); ++r) {
      const Track& t = tracks[rows[r]];
      for (size_t c = 0; c < cols.size(); ++c) {
        // Most pairs are far apart: this test skips them in a few instructions.
        const double* e = col_ext.data() + 4 * c;
        if (e[0] >= t.ext[2] || t.ext[0] >= e[2] || e[1] >= t.ext[3] || t.ext[1] >= e[3]) continue;
        const int64_t d = cols[c];
        double sim = similarity(t, d, det_boxes.data() + 4 * d);
        if (fuse) sim *= static_cast<double>(scores[d]);
        if (sim >= th && sim > 0.0)
          edges.push_back({static_cast<int64_t>(r), static_cast<int64_t>(c), th - sim});
      }
    }
    return detail::assign_edges(static_cast<int64_t>(rows.size()),
                                static_cast<int64_t>(cols.size()), edges);
  }

  // Whether detection d's box overlaps, by IoU above duplicate_iou, a detection given to a track
  // this frame (by a stage or as a new track). Class-aware NMS keeps one box per class, so an
  // object seen as two classes arrives twice; a second track would count it twice.
  // Masks are compared where both have one (the owner's mask now sits in its track, unshifted),
  // so two parts lying across each other, whose boxes overlap a lot, stay two.
  bool duplicates_owned(int64_t d, const std::vector<double>& det_boxes) const {
    const bool has_mask =
        opt.use_masks && d < static_cast<int64_t>(det_masks.size()) && !det_masks[d].empty();
    for (size_t e = 0; e < track_of.size(); ++e) {
      if (track_of[e] < 0) continue;
      const Track& owner = tracks[track_of[e]];
      const double iou = has_mask && !owner.mask.empty()
                             ? packed_iou(owner.mask, 0, 0, det_masks[d])
                             : box_iou(det_boxes.data() + 4 * e, det_boxes.data() + 4 * d);
      if (iou > opt.duplicate_iou) return true;
    }
    return false;
  }

  void apply_match(Track& t, int64_t d, const float* boxes, const float* scores,
                   const int32_t* classes) {
    double z[4];
    center_size(boxes + 4 * d, z);
    kalman_update(&t.kf, z);
    t.lost = false;
    t.hits += 1;
    t.last_frame = frame;
    t.score = scores[d];
    const int32_t cls = classes ? classes[d] : 0;
    bool found = false;
    for (Vote& v : t.votes) {
      if (v.class_id == cls) {
        v.count += 1;
        v.last_frame = frame;
        found = true;
      }
    }
    if (!found) t.votes.push_back({cls, 1, frame});
    const Vote* best = &t.votes[0];
    for (const Vote& v : t.votes) {
      if (v.count > best->count || (v.count == best->count && v.last_frame > best->last_frame))
        best = &v;
    }
    t.voted = best->class_id;
    if (d < static_cast<int64_t>(det_masks.size()) && !det_masks[d].empty()) {
      std::swap(t.mask, det_masks[d]);  // each detection is matched once: no copy needed
      t.mask_cx = t.kf.mean[0];
      t.mask_cy = t.kf.mean[1];
    } else {
      t.mask = PackedMask();
    }
  }
};

Tracker::Tracker(const TrackerOptions& options) : impl_(new Impl) {
  check_tracker_options(options);
  impl_->opt = options;
}
Tracker::~Tracker() = default;
Tracker::Tracker(Tracker&&) noexcept = default;
Tracker& Tracker::operator=(Tracker&&) noexcept = default;

const TrackerOptions& Tracker::options() const { return impl_->opt; }
int64_t Tracker::frame() const { return impl_->frame; }

void Tracker::reset() {
  impl_->tracks.clear();
  impl_->frame = 0;
  impl_->next_id = 1;
}

std::vector<TrackState> Tracker::tracks() const {
  std::vector<TrackState> out;
  for (const Track& t : impl_->tracks) {
    if (t.id == 0) continue;
    TrackState s;
    s.id = t.id;
    const double* m = t.kf.mean;
    const double w = std::max(m[2], 0.0), h = std::max(m[3], 0.0);
    s.box[0] = static_cast<float>(m[0] - w / 2);
    s.box[1] = static_cast<float>(m[1] - h / 2);
    s.box[2] = static_cast<float>(m[0] + w / 2);
    s.box[3] = static_cast<float>(m[1] + h / 2);
    s.score = t.score;
    s.class_id = t.voted;
    s.hits = t.hits;
    s.age = impl_->frame - t.start_frame + 1;
    s.time_since_update = impl_->frame - t.last_frame;
    s.lost = t.lost;
    out.push_back(s);
  }
  std::sort(out.begin(), out.end(),
            [](const TrackState& a, const TrackState& b) { return a.id < b.id; });
  return out;
}

TrackUpdate Tracker::update(const float* boxes, const float* scores, const int32_t* classes,
                            int64_t n, const MaskCrops* masks, const float* warp) {
  Impl& s = *impl_;
  const TrackerOptions& o = s.opt;
  // ---- checks, before any state changes ----
  if (n < 0 || n > std::numeric_limits<int64_t>::max() / 4)
    throw InvalidArgument("number of detections must be in [0, 2^61), got " + std::to_string(n));
  if (n > 0 && (boxes == nullptr || scores == nullptr))
    throw InvalidArgument("boxes or scores are null");
  for (int64_t i = 0; i < n; ++i) {
    const float* b = boxes + 4 * i;
    for (int j = 0; j < 4; ++j) {
      if (!(std::fabs(b[j]) <= kMaxCoord))  // also catches NaN
        throw InvalidArgument("box " + std::to_string(i) +
                              " has a NaN, infinite or out-of-range coordinate (" +
                              std::to_string(b[j]) + "; the limit is +-2^31)");
    }
    if (b[2] < b[0] || b[3] < b[1])
      throw InvalidArgument("box " + std::to_string(i) + " has x2 < x1 or y2 < y1 (" +
                            std::to_string(b[0]) + ", " + std::to_string(b[1]) + ", " +
                            std::to_string(b[2]) + ", " + std::to_string(b[3]) + ")");
    if (!(scores[i] >= 0.f && scores[i] <= 1.f))
      throw InvalidArgument("score " + std::to_string(i) + " must be in [0, 1], got " +
                            std::to_string(scores[i]));
    if (classes != nullptr && classes[i] < 0)
      throw InvalidArgument("class id " + std::to_string(i) + " must be >= 0, got " +
                            std::to_string(classes[i]));
  }
  if (masks != nullptr) check_masks(*masks, n, "tracker update");
  double m[6] = {1, 0, 0, 0, 1, 0};
  if (warp != nullptr) {
    for (int i = 0; i < 6; ++i) {
      const bool linear = i != 2 && i != 5;
      const double lim = linear ? kMaxWarpLinear : kMaxCoord;
      if (!(std::fabs(warp[i]) <= lim))
        throw InvalidArgument(
            "warp entry " + std::to_string(i) + " (" + std::to_string(warp[i]) +
            ") is NaN, infinite or beyond +-" +
            (linear ? std::string("16 (the 2x2 part)") : std::string("2^31 (the translation)")));
      m[i] = warp[i];
    }
    if (!(m[0] * m[4] - m[1] * m[3] > 0.0))
      throw InvalidArgument(
          "warp must have a positive determinant (a camera motion, not a flip "
          "or a collapse), got " +
          std::to_string(m[0] * m[4] - m[1] * m[3]));
  }

  s.frame += 1;
  const size_t nd = static_cast<size_t>(n);
  std::vector<double> det_boxes(4 * nd);
  for (size_t i = 0; i < 4 * nd; ++i) det_boxes[i] = boxes[i];
  s.det_masks.resize(o.use_masks && masks != nullptr ? nd : 0);
  for (size_t i = 0; i < s.det_masks.size(); ++i)
    pack(masks->bits + masks->offsets[i], masks->rects + 4 * i, &s.det_masks[i]);
  s.det_ext.assign(det_boxes.begin(), det_boxes.end());
  for (size_t i = 0; i < s.det_masks.size(); ++i) {
    const PackedMask& pm = s.det_masks[i];
    if (!pm.empty()) extend(s.det_ext.data() + 4 * i, pm, 0, 0);
  }

  // ---- predict (and warp) every track ----
  for (Track& t : s.tracks) {
    kalman_predict(&t.kf);
    if (warp != nullptr) kalman_warp(&t.kf, m);
  }
  s.tracks.erase(std::remove_if(s.tracks.begin(), s.tracks.end(),
                                [](const Track& t) { return !state_ok(t.kf); }),
                 s.tracks.end());
  for (Track& t : s.tracks) {
    const double* x = t.kf.mean;
    t.pred[0] = x[0] - x[2] / 2;
    t.pred[1] = x[1] - x[3] / 2;
    t.pred[2] = x[0] + x[2] / 2;
    t.pred[3] = x[1] + x[3] / 2;
    t.dx = rounded_shift(x[0] - t.mask_cx);
    t.dy = rounded_shift(x[1] - t.mask_cy);
    // Extent: the predicted box (in order even if its size went negative) and the moved mask.
    t.ext[0] = std::min(t.pred[0], t.pred[2]);
    t.ext[1] = std::min(t.pred[1], t.pred[3]);
    t.ext[2] = std::max(t.pred[0], t.pred[2]);
    t.ext[3] = std::max(t.pred[1], t.pred[3]);
    if (o.use_masks && !t.mask.empty()) extend(t.ext, t.mask, t.dx, t.dy);
  }

  std::vector<int64_t> high, low, pool, tentative;
  for (int64_t i = 0; i < n; ++i) {
    if (scores[i] >= o.high_thresh)
      high.push_back(i);
    else if (scores[i] >= o.low_thresh)
      low.push_back(i);
  }
  for (size_t k = 0; k < s.tracks.size(); ++k)
    (s.tracks[k].id != 0 ? pool : tentative).push_back(static_cast<int64_t>(k));
  s.track_of.assign(nd, -1);

  // ---- stage 1: high detections vs tracked and lost tracks ----
  std::vector<int64_t> match =
      s.associate(pool, high, det_boxes, scores, o.match_iou, o.fuse_score);
  std::vector<int64_t> remaining;  // tracked tracks left for stage 2
  std::vector<char> high_used(high.size(), 0);
  for (size_t r = 0; r < pool.size(); ++r) {
    Track& t = s.tracks[pool[r]];
    if (match[r] >= 0) {
      const int64_t d = high[match[r]];
      high_used[match[r]] = 1;
      s.apply_match(t, d, boxes, scores, classes);
      s.track_of[d] = pool[r];
    } else if (!t.lost) {
      remaining.push_back(pool[r]);
    }
  }
  // ---- stage 2: low detections vs the tracked tracks left ----
  match = s.associate(remaining, low, det_boxes, scores, o.second_match_iou, false);
  for (size_t r = 0; r < remaining.size(); ++r) {
    Track& t = s.tracks[remaining[r]];
    if (match[r] >= 0) {
      const int64_t d = low[match[r]];
      s.apply_match(t, d, boxes, scores, classes);
      s.track_of[d] = remaining[r];
    } else {
      t.lost = true;
    }
  }
  // ---- stage 3: tentative tracks vs the high detections left ----
  std::vector<int64_t> left;
  for (size_t c = 0; c < high.size(); ++c) {
    if (!high_used[c]) left.push_back(high[c]);
  }
  match = s.associate(tentative, left, det_boxes, scores, o.unconfirmed_match_iou, o.fuse_score);
  std::vector<char> left_used(left.size(), 0), removed(s.tracks.size(), 0);
  for (size_t r = 0; r < tentative.size(); ++r) {
    Track& t = s.tracks[tentative[r]];
    if (match[r] < 0) {
      removed[tentative[r]] = 1;  // activation needs consecutive hits
      continue;
    }
    const int64_t d = left[match[r]];
    left_used[match[r]] = 1;
    s.apply_match(t, d, boxes, scores, classes);
    if (t.hits >= o.min_hits) t.id = s.next_id++;
    s.track_of[d] = tentative[r];
  }
  // ---- new tracks from the high detections still unmatched ----
  for (size_t c = 0; c < left.size(); ++c) {
    const int64_t d = left[c];
    if (left_used[c] || scores[d] < o.new_track_thresh) continue;
    if (s.duplicates_owned(d, det_boxes)) continue;  // one object detected twice: one track
    Track t;
    double z[4];
    center_size(boxes + 4 * d, z);
    kalman_init(&t.kf, z);
    t.start_frame = s.frame;
    s.tracks.push_back(std::move(t));
    removed.push_back(0);
    Track& added = s.tracks.back();
    // apply_match would run a Kalman update; a new track only takes the rest of the bookkeeping.
    added.hits = 1;
    added.last_frame = s.frame;
    added.score = scores[d];
    added.voted = classes ? classes[d] : 0;
    added.votes.push_back({added.voted, 1, s.frame});
    if (d < static_cast<int64_t>(s.det_masks.size()) && !s.det_masks[d].empty()) {
      std::swap(added.mask, s.det_masks[d]);
      added.mask_cx = z[0];
      added.mask_cy = z[1];
    }
    if (added.hits >= o.min_hits) added.id = s.next_id++;
    s.track_of[d] = static_cast<int64_t>(s.tracks.size()) - 1;
  }

  // ---- the result, then removals (indices in track_of refer to the list before them) ----
  TrackUpdate out;
  out.ids.assign(nd, -1);
  out.classes.assign(nd, -1);
  for (size_t i = 0; i < nd; ++i) {
    if (s.track_of[i] < 0) continue;
    const Track& t = s.tracks[s.track_of[i]];
    if (t.id == 0) continue;
    out.ids[i] = t.id;
    out.classes[i] = t.voted;
  }
  size_t k = 0;
  for (size_t i = 0; i < s.tracks.size(); ++i) {
    const Track& t = s.tracks[i];
    // frame - last_frame cannot overflow: both are frame counts >= 0.
    if (removed[i] || (t.lost && s.frame - t.last_frame > o.lost_frames)) continue;
    if (k != i) s.tracks[k] = std::move(s.tracks[i]);
    ++k;
  }
  s.tracks.resize(k);
  return out;
}

std::vector<double> mask_iou(const MaskCrops& a, int64_t na, const MaskCrops& b, int64_t nb,
                             const int64_t* shifts) {
  int64_t size = 0;
  if (na < 0 || nb < 0 || na > std::numeric_limits<int64_t>::max() / 4 ||
      nb > std::numeric_limits<int64_t>::max() / 4 || detail::mul_overflows(na, nb, &size))
    throw InvalidArgument("mask counts must be >= 0 and their product must fit in int64");
  check_masks(a, na, "mask_iou (first set)");
  check_masks(b, nb, "mask_iou (second set)");
  if (shifts != nullptr) {
    for (int64_t i = 0; i < 2 * na; ++i) {
      if (shifts[i] < -kMaxShift || shifts[i] > kMaxShift)
        throw InvalidArgument("mask shift " + std::to_string(shifts[i]) + " is beyond +-2^32");
    }
  }
  std::vector<PackedMask> pa(static_cast<size_t>(na)), pb(static_cast<size_t>(nb));
  for (int64_t i = 0; i < na; ++i) pack(a.bits + a.offsets[i], a.rects + 4 * i, &pa[i]);
  for (int64_t j = 0; j < nb; ++j) pack(b.bits + b.offsets[j], b.rects + 4 * j, &pb[j]);
  std::vector<double> out(static_cast<size_t>(size));
  for (int64_t i = 0; i < na; ++i) {
    const int64_t dx = shifts ? shifts[2 * i] : 0, dy = shifts ? shifts[2 * i + 1] : 0;
    for (int64_t j = 0; j < nb; ++j) out[i * nb + j] = packed_iou(pa[i], dx, dy, pb[j]);
  }
  return out;
}

}  // namespace edgeseg
