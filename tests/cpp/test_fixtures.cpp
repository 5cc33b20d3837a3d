// The core against the references on real model outputs, without Python: each fixture of
// tests/cpp/fixtures (written by tests/cpp/make_fixtures.py) holds a fixture model's raw outputs on
// a coco-val-mini image and what the numpy transcription of its family's official postprocess made
// of them (YOLO, SOLOv2, MMDeploy Mask R-CNN). The case's one-call postprocess (its layout and
// options generated as `edgeseg info --cpp` writes them, fixtures/cases.inc) must find the same
// instances, held to the Python parity tests' criteria: every reference instance matched by class
// with box IoU >= 0.99, scores within 1e-3, mask IoU mean
// >= 0.97 and >= 0.9 for 90% of them, no extra instance.
//
//   edgeseg_fixture_tests tests/cpp/fixtures
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "edgeseg/postprocess.hpp"
#include "fixtures/cases.inc"

namespace {

struct Expected {
  int32_t cls = 0;
  float score = 0.f;
  float box[4] = {0, 0, 0, 0};
  std::string rle;
};

// IEEE half to float (normals, subnormals, zeros, inf, NaN).
float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalize
      int e = -1;
      uint32_t m = mant;
      do {
        ++e;
        m <<= 1;
      } while ((m & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (m & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// COCO's compact RLE string (pycocotools rleFrString) to run lengths.
std::vector<uint32_t> rle_from_string(const std::string& s) {
  std::vector<int64_t> counts;
  size_t p = 0;
  while (p < s.size()) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      const int64_t c = static_cast<int64_t>(s[p]) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= -(int64_t{1} << (5 * k));
    }
    if (counts.size() > 2) x += counts[counts.size() - 2];
    counts.push_back(x);
  }
  return {counts.begin(), counts.end()};
}

// Column-major bitmap of run lengths (zeros first).
std::vector<uint8_t> decode(const std::vector<uint32_t>& counts, size_t pixels) {
  std::vector<uint8_t> m(pixels, 0);
  size_t at = 0;
  for (size_t i = 0; i < counts.size() && at < pixels; ++i) {
    const size_t end = std::min(pixels, at + counts[i]);
    if (i % 2 == 1)
      std::fill(m.begin() + static_cast<std::ptrdiff_t>(at),
                m.begin() + static_cast<std::ptrdiff_t>(end), 1);
    at = end;
  }
  return m;
}

float box_iou(const float* a, const float* b) {
  const float iw = std::max(0.f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const float ih = std::max(0.f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const float u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih;
  return u > 0 ? iw * ih / u : 0.f;
}

// One case's outputs: float32 (widened from the file's float16) or int64, one image each.
struct Outputs {
  int32_t src_h = 0, src_w = 0;
  std::vector<std::vector<float>> floats;
  std::vector<std::vector<int64_t>> ints;
  std::vector<edgeseg::Tensor> tensors;
};

bool read_bin(const std::string& path, Outputs* out) {
  std::ifstream in(path, std::ios::binary);
  char magic[4];
  uint32_t version = 0;
  int32_t n = 0;
  in.read(magic, 4);
  in.read(reinterpret_cast<char*>(&version), 4);
  in.read(reinterpret_cast<char*>(&out->src_h), 4);
  in.read(reinterpret_cast<char*>(&out->src_w), 4);
  in.read(reinterpret_cast<char*>(&n), 4);
  if (!in || std::memcmp(magic, "ESFX", 4) != 0 || version != 2 || n < 1 || n > 64) return false;
  std::vector<std::pair<int32_t, std::vector<int64_t>>> shapes;
  for (int32_t i = 0; i < n; ++i) {
    int32_t kind = 0, ndim = 0;
    in.read(reinterpret_cast<char*>(&kind), 4);
    in.read(reinterpret_cast<char*>(&ndim), 4);
    if (!in || ndim < 1 || ndim > 8) return false;
    std::vector<int64_t> shape(static_cast<size_t>(ndim));
    for (auto& d : shape) {
      int32_t v = 0;
      in.read(reinterpret_cast<char*>(&v), 4);
      d = v;
    }
    shapes.emplace_back(kind, shape);
  }
  out->floats.resize(shapes.size());
  out->ints.resize(shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    int64_t count = 1;
    for (int64_t d : shapes[i].second) count *= d;
    if (shapes[i].first == 0) {
      std::vector<uint16_t> raw(static_cast<size_t>(count));
      in.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size() * 2));
      out->floats[i].resize(raw.size());
      std::transform(raw.begin(), raw.end(), out->floats[i].begin(), half_to_float);
    } else {
      out->ints[i].resize(static_cast<size_t>(count));
      in.read(reinterpret_cast<char*>(out->ints[i].data()),
              static_cast<std::streamsize>(count * 8));
    }
  }
  if (!in) return false;
  for (size_t i = 0; i < shapes.size(); ++i) {
    const bool f = shapes[i].first == 0;
    out->tensors.push_back(
        {f ? static_cast<const void*>(out->floats[i].data()) : out->ints[i].data(),
         f ? edgeseg::DType::kFloat32 : edgeseg::DType::kInt64,
         shapes[i].second,
         {},
         {}});
  }
  return true;
}

bool run_case(const std::string& dir, const FixtureCase& c) {
  const std::string name = c.name;
  Outputs o;
  if (!read_bin(dir + "/" + name + ".bin", &o)) {
    std::fprintf(stderr, "%s: not a readable fixture\n", name.c_str());
    return false;
  }
  const int32_t src_h = o.src_h, src_w = o.src_w;
  std::vector<Expected> expected;
  std::ifstream ex(dir + "/" + name + ".expected");
  for (std::string line; std::getline(ex, line);) {
    std::istringstream ls(line);
    Expected e;
    ls >> e.cls >> e.score >> e.box[0] >> e.box[1] >> e.box[2] >> e.box[3] >> e.rle;
    expected.push_back(e);
  }
  const edgeseg::Instances found = c.run(o.tensors, src_h, src_w);

  const auto pixels = static_cast<size_t>(src_h) * static_cast<size_t>(src_w);
  std::vector<bool> used(static_cast<size_t>(found.size()), false);
  std::vector<float> mask_ious;
  int problems = 0;
  for (size_t r = 0; r < expected.size(); ++r) {
    const Expected& e = expected[r];
    int64_t best = -1;
    float best_iou = 0.f;
    for (int64_t i = 0; i < found.size(); ++i) {
      if (used[static_cast<size_t>(i)] || found.classes[static_cast<size_t>(i)] != e.cls) continue;
      const float iou = box_iou(e.box, &found.boxes[static_cast<size_t>(4 * i)]);
      if (iou > best_iou) best = i, best_iou = iou;
    }
    if (best < 0 || best_iou < 0.99f ||
        std::fabs(found.scores[static_cast<size_t>(best)] - e.score) > 1e-3f) {
      if (problems++ < 5)
        std::fprintf(stderr,
                     "%s: reference instance %zu (class %d, score %.4f) unmatched (box IoU %.4f)\n",
                     name.c_str(), r, e.cls, e.score, best_iou);
      continue;
    }
    used[static_cast<size_t>(best)] = true;
    const auto& m = found.masks;
    const auto b = static_cast<size_t>(best);
    const auto ours =
        decode(edgeseg::rle_counts(m.bits.data() + m.offsets[b], m.rects[4 * b], m.rects[4 * b + 1],
                                   m.rects[4 * b + 2], m.rects[4 * b + 3], src_h, src_w),
               pixels);
    const auto ref = decode(rle_from_string(e.rle), pixels);
    size_t inter = 0, uni = 0;
    for (size_t p = 0; p < pixels; ++p) {
      inter += ours[p] & ref[p];
      uni += ours[p] | ref[p];
    }
    mask_ious.push_back(uni ? static_cast<float>(inter) / static_cast<float>(uni) : 1.f);
  }
  const auto extra = static_cast<size_t>(std::count(used.begin(), used.end(), false));
  float mean = 0.f, good = 0.f;
  for (float v : mask_ious) mean += v, good += v >= 0.9f;
  mean = mask_ious.empty() ? 1.f : mean / static_cast<float>(mask_ious.size());
  good = mask_ious.empty() ? 1.f : good / static_cast<float>(mask_ious.size());
  std::printf(
      "%s: %zu reference instances, %lld found, %d unmatched, %zu extra, mask IoU mean %.4f, "
      ">= 0.9 %.3f\n",
      name.c_str(), expected.size(), static_cast<long long>(found.size()), problems, extra,
      static_cast<double>(mean), static_cast<double>(good));
  return !expected.empty() && problems == 0 && extra == 0 && mean >= 0.97f && good >= 0.9f;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
    return 2;
  }
  bool ok = true;
  for (const auto& c : kFixtureCases) ok = run_case(argv[1], c) && ok;
  return ok ? 0 : 1;
}
