// The YOLO layout of a model from its output shapes and metadata (postprocess.hpp): the same
// decisions edgeseg.load makes in Python (heads/yolo.py), for C++ users who load the model with
// their own runtime. tests/test_postprocess_cpp.py checks that both agree on every YOLO fixture.
#include <cctype>
#include <string>
#include <vector>

#include "edgeseg/postprocess.hpp"

namespace edgeseg {
namespace {

constexpr int64_t kMaxClasses = int64_t{1} << 16;  // as spec.MAX_CLASSES
constexpr int64_t kAnchorsPerCell = 3;             // YOLOv5 / YOLOv7

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + (shape[i] < 0 ? std::string("?") : std::to_string(shape[i]));
  return s + "]";
}

// A small reader of Python literals: quoted strings, integers, and the punctuation of dicts and
// lists. Enough for Ultralytics' `names` metadata; anything else is refused, never guessed.
struct LiteralReader {
  const std::string& s;
  size_t i = 0;

  [[noreturn]] void fail(const std::string& why) const {
    throw InvalidArgument(
        "class names metadata is not a dict {0: 'name', ...} or a list of names (" + why +
        " at character " + std::to_string(i) + ")");
  }
  void skip() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  bool eat(char c) {
    skip();
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  std::string string() {
    skip();
    if (i >= s.size() || (s[i] != '\'' && s[i] != '"')) fail("expected a quoted name");
    const char quote = s[i++];
    std::string out;
    while (i < s.size() && s[i] != quote) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;  // \' and \\ as Python's repr writes them
      out += s[i++];
    }
    if (i >= s.size()) fail("unterminated name");
    ++i;
    return out;
  }
  int64_t integer() {
    skip();
    const size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && i - start < 9) ++i;
    if (i == start) fail("expected a class index");
    return std::stoll(s.substr(start, i - start));
  }
};

bool fits_prototypes(int64_t channels, int64_t ph, int64_t pw, const std::vector<int64_t>& features,
                     int64_t known_nc, int64_t in_h, int64_t in_w) {
  if (channels < 1) return false;
  bool raw = false, end2end = false;
  for (int64_t f : features) {
    end2end |= f == 6 + channels;
    const int64_t nc = f - 4 - channels;
    raw |= nc >= 1 && (known_nc < 0 || known_nc == nc || known_nc == nc - 1);  // YOLOv8 or v5
  }
  if (!features.empty() && !raw && !end2end) return false;
  if (in_h < 0 || in_w < 0 || ph < 0 || pw < 0) return true;  // dynamic: nothing to compare
  return ph > 0 && pw > 0 && in_h % ph == 0 && in_w % pw == 0 && in_h / ph == in_w / pw;
}

int64_t grid_cells(int64_t h, int64_t w, std::initializer_list<int64_t> strides) {
  int64_t cells = 0;
  for (int64_t s : strides) cells += ((h + s - 1) / s) * ((w + s - 1) / s);
  return cells;
}

}  // namespace

std::vector<std::string> parse_names(const std::string& value) {
  LiteralReader r{value};
  std::vector<std::string> names;
  if (r.eat('{')) {
    while (!r.eat('}')) {
      if (!names.empty() && !r.eat(',')) r.fail("expected ','");
      if (r.eat('}')) break;  // a trailing comma
      if (r.integer() != static_cast<int64_t>(names.size()))
        r.fail("class indices must be 0, 1, ...");
      if (!r.eat(':')) r.fail("expected ':'");
      names.push_back(r.string());
    }
  } else if (r.eat('[')) {
    while (!r.eat(']')) {
      if (!names.empty() && !r.eat(',')) r.fail("expected ','");
      if (r.eat(']')) break;
      names.push_back(r.string());
    }
  } else {
    r.fail("expected '{' or '['");
  }
  r.skip();
  if (r.i != value.size()) r.fail("unexpected text after the names");
  if (names.empty()) r.fail("no names");
  return names;
}

YoloLayout yolo_layout(const std::vector<std::vector<int64_t>>& outputs,
                       const std::vector<int64_t>& input, const Metadata& metadata) {
  std::string found;
  for (const auto& s : outputs) found += (found.empty() ? "" : ", ") + shape_str(s);
  auto fail = [&](const std::string& why) -> InvalidArgument {
    return InvalidArgument(
        why + "; found outputs " + found + " and input " + shape_str(input) +
        ". Supported: [B, 4 + classes + C, anchors] (or transposed) or [B, K, 6 + C] (end-to-end) "
        "or [B, anchors, 5 + classes + C] (YOLOv5), with prototypes [B, C, h, w] (or NHWC)");
  };
  int64_t det = -1, proto = -1;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (outputs[i].size() == 3) det = det < 0 ? static_cast<int64_t>(i) : -2;
    if (outputs[i].size() == 4) proto = proto < 0 ? static_cast<int64_t>(i) : -2;
  }
  if (outputs.size() != 2 || det < 0 || proto < 0)
    throw fail("a YOLO-seg model has two outputs: detections (3 dimensions) and prototypes (4)");
  if (input.size() != 4) throw fail("the input must have 4 dimensions");
  const bool input_nhwc = input[3] == 3 && input[1] != 3;
  const int64_t in_h = input_nhwc ? input[1] : input[2], in_w = input_nhwc ? input[2] : input[3];

  YoloLayout layout;
  layout.detections = det;
  layout.prototypes = proto;
  const auto names = metadata.find("names");
  if (names != metadata.end()) layout.names = parse_names(names->second);
  const int64_t known_nc = layout.names.empty() ? -1 : static_cast<int64_t>(layout.names.size());
  const auto args = metadata.find("args"), end2end = metadata.find("end2end");
  const bool e2e_meta =
      (args != metadata.end() && args->second.find("'nms': True") != std::string::npos) ||
      (end2end != metadata.end() && end2end->second == "True");

  const auto& d = outputs[static_cast<size_t>(det)];
  const auto& p = outputs[static_cast<size_t>(proto)];
  const int64_t a = d[1], c = d[2];
  if (c == 5) throw fail("rows of 5 values are an end-to-end dets output, not a YOLO head");
  std::vector<int64_t> features;
  for (int64_t f : {a, c})
    if (f >= 0) features.push_back(f);
  const bool nchw_ok = fits_prototypes(p[1], p[2], p[3], features, known_nc, in_h, in_w);
  const bool nhwc_ok = fits_prototypes(p[3], p[1], p[2], features, known_nc, in_h, in_w);
  if (nchw_ok != nhwc_ok) {
    layout.prototypes_nhwc = nhwc_ok;
  } else if (nchw_ok && metadata.count("stride")) {
    layout.prototypes_nhwc = input_nhwc;  // Ultralytics' exports follow the input's layout
  } else {
    throw fail(
        std::string("cannot tell the layout of the prototypes: [B, C, h, w] and [B, h, w, C] ") +
        (nchw_ok ? "fit both" : "fit neither"));
  }
  const int64_t nm = layout.prototypes_nhwc ? p[3] : p[1];
  layout.num_coeffs = nm;

  // YOLOv5 / YOLOv7: anchor-major with objectness, told by the class count or the anchor count.
  bool objectness = false;
  if (!(e2e_meta && c == 6 + nm) && c >= 0 && !(a >= 0 && a <= c) && c - 5 - nm >= 1 &&
      !(c == 6 + nm && known_nc < 0)) {
    if (known_nc >= 0) {
      objectness = c == 5 + known_nc + nm;
    } else if (a >= 0 && in_h >= 0 && in_w >= 0) {
      const int64_t p5 = grid_cells(in_h, in_w, {8, 16, 32}),
                    p6 = grid_cells(in_h, in_w, {8, 16, 32, 64});
      if (a == kAnchorsPerCell * p5 || a == kAnchorsPerCell * p6) {
        objectness = true;
      } else if (a != p5 && a != p6) {
        throw fail(
            "cannot tell a YOLOv5 head (3 anchors per cell) from a YOLOv8 one (one per cell): "
            "the anchor count fits neither and there are no class names in the metadata");
      }
    } else {
      throw fail("cannot tell a YOLOv5 head from a YOLOv8 one without class names or a fixed size");
    }
  }

  auto raw_nc = [&](int64_t f, int64_t anchors) -> int64_t {
    if (f < 0) return known_nc;
    const int64_t nc = f - 4 - nm;
    if (nc < 1 || (known_nc >= 0 && nc != known_nc)) return -1;
    return anchors < 0 || anchors > f ? nc : -1;
  };
  int64_t nc = -1;
  if (e2e_meta && c == 6 + nm) {
    layout.head = YoloHead::kEndToEnd;
    nc = known_nc;
  } else if (objectness) {
    layout.head = YoloHead::kObjectness;
    layout.anchor_major = true;
    nc = c - 5 - nm;
  } else if ((nc = raw_nc(a, c)) >= 0) {
  } else if ((nc = raw_nc(c, a)) >= 0) {
    layout.anchor_major = true;
  } else if (c == 6 + nm) {
    layout.head = YoloHead::kEndToEnd;
    nc = known_nc;
  } else {
    throw fail("the detections output matches neither a raw YOLO-seg head nor an end-to-end one");
  }
  if (nc < 1) throw fail("the class count is not in the shapes: the metadata has no class names");
  if (nc > kMaxClasses)
    throw fail("the detections output implies " + std::to_string(nc) + " classes, more than " +
               std::to_string(kMaxClasses));
  layout.num_classes = nc;
  return layout;
}

}  // namespace edgeseg
