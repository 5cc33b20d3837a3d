// A YOLO segmentation model end to end in C++: an image -> ONNX Runtime (C++ API) -> edgeseg's
// whole postprocess -> instances printed as JSON lines and an annotated image.
//
//   segment MODEL.onnx IMAGE.jpg|IMAGE.ppm [--out annotated.jpg|.ppm] [--conf 0.25] [--iou 0.7]
//
// The model's layout comes from its own output shapes and metadata (edgeseg::yolo_layout), as
// edgeseg.load finds it in Python; preprocessing is Ultralytics' letterbox (grey 114 padding,
// RGB, pixel / 255), the same as the Python API's, so the instances are the Python API's. Each
// line:
// {"class_id", "name", "score", "box" [x1, y1, x2, y2], "area", "rle"} with the mask as COCO's
// compact RLE string of the whole image.
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef EDGESEG_EXAMPLE_JPEG  // with libjpeg (found by CMake); PPM images always work
// After <cstdio>: jpeglib.h uses FILE and size_t without including their headers.
#include <jpeglib.h>
#endif

#include "edgeseg/postprocess.hpp"
#include "edgeseg/version.hpp"

namespace {

struct Image {  // interleaved RGB, 8 bits a channel
  int64_t h = 0, w = 0;
  std::vector<uint8_t> rgb;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

#ifdef EDGESEG_EXAMPLE_JPEG
// libjpeg reports errors through error_exit, which must not return; a longjmp back here is its
// documented way out (a C++ exception must not unwind through the C library).
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

Image read_jpeg(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error("cannot open " + path);
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = [](j_common_ptr c) {
    auto* e = reinterpret_cast<JpegError*>(c->err);
    (*c->err->format_message)(c, e->message);
    std::longjmp(e->jump, 1);
  };
  Image img;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    std::fclose(f);
    throw std::runtime_error(path + ": " + err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;  // grey and CMYK files too
  jpeg_start_decompress(&cinfo);
  img.h = cinfo.output_height;
  img.w = cinfo.output_width;
  img.rgb.resize(static_cast<size_t>(img.h * img.w * 3));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = img.rgb.data() + static_cast<size_t>(cinfo.output_scanline) * img.w * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  std::fclose(f);
  return img;
}

void write_jpeg(const std::string& path, const Image& img) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + path);
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, f);
  cinfo.image_width = static_cast<JDIMENSION>(img.w);
  cinfo.image_height = static_cast<JDIMENSION>(img.h);
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, 90, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    auto row =
        const_cast<JSAMPROW>(img.rgb.data() + static_cast<size_t>(cinfo.next_scanline) * img.w * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::fclose(f);
}

#else
Image read_jpeg(const std::string& path) {
  throw std::runtime_error(path + ": this build has no libjpeg; give a PPM (P6) image");
}
void write_jpeg(const std::string& path, const Image&) {
  throw std::runtime_error(path + ": this build has no libjpeg; write a .ppm");
}
#endif

// Binary PPM (P6, maxval 255), the simplest format every tool reads.
Image read_ppm(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string magic;
  int64_t w = 0, h = 0, maxval = 0;
  in >> magic >> w >> h >> maxval;
  if (!in || magic != "P6" || w <= 0 || h <= 0 || w > 1 << 15 || h > 1 << 15 || maxval != 255)
    throw std::runtime_error(path + " is not a binary 8-bit PPM (P6) image");
  in.get();  // the one whitespace after the header
  Image img{h, w, std::vector<uint8_t>(static_cast<size_t>(h * w * 3))};
  in.read(reinterpret_cast<char*>(img.rgb.data()), static_cast<std::streamsize>(img.rgb.size()));
  if (!in) throw std::runtime_error(path + " is truncated");
  return img;
}

void write_ppm(const std::string& path, const Image& img) {
  std::ofstream out(path, std::ios::binary);
  out << "P6\n" << img.w << " " << img.h << "\n255\n";
  out.write(reinterpret_cast<const char*>(img.rgb.data()),
            static_cast<std::streamsize>(img.rgb.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

// Bilinear resize with half-pixel centres. A COCO image (longest side 640) into a 640 input needs
// none, so there the tensor is exactly the Python API's; other sizes may differ from OpenCV's
// fixed-point resize by a grey level here and there.
Image resize(const Image& src, int64_t h, int64_t w) {
  if (src.h == h && src.w == w) return src;
  Image dst{h, w, std::vector<uint8_t>(static_cast<size_t>(h * w * 3))};
  const double sy = static_cast<double>(src.h) / h, sx = static_cast<double>(src.w) / w;
  for (int64_t y = 0; y < h; ++y) {
    const double fy = std::clamp((y + 0.5) * sy - 0.5, 0.0, static_cast<double>(src.h - 1));
    const auto y0 = static_cast<int64_t>(fy);
    const int64_t y1 = std::min(y0 + 1, src.h - 1);
    const double ay = fy - y0;
    for (int64_t x = 0; x < w; ++x) {
      const double fx = std::clamp((x + 0.5) * sx - 0.5, 0.0, static_cast<double>(src.w - 1));
      const auto x0 = static_cast<int64_t>(fx);
      const int64_t x1 = std::min(x0 + 1, src.w - 1);
      const double ax = fx - x0;
      for (int c = 0; c < 3; ++c) {
        auto at = [&](int64_t yy, int64_t xx) {
          return src.rgb[static_cast<size_t>((yy * src.w + xx) * 3 + c)];
        };
        const double v = (1 - ay) * ((1 - ax) * at(y0, x0) + ax * at(y0, x1)) +
                         ay * ((1 - ax) * at(y1, x0) + ax * at(y1, x1));
        dst.rgb[static_cast<size_t>((y * w + x) * 3 + c)] = static_cast<uint8_t>(std::lround(v));
      }
    }
  }
  return dst;
}

// Ultralytics' input: the image letterboxed on grey 114, RGB, NCHW, pixel / 255 (a division, as
// the reference does, so the floats are bit-identical).
std::vector<float> to_input(const Image& img, const edgeseg::Letterbox& lb) {
  const Image fitted = resize(img, lb.new_h, lb.new_w);
  const int64_t plane = lb.dst_h * lb.dst_w;
  std::vector<float> x(static_cast<size_t>(3 * plane), 114.f / 255.f);
  for (int64_t y = 0; y < lb.new_h; ++y)
    for (int64_t xx = 0; xx < lb.new_w; ++xx)
      for (int c = 0; c < 3; ++c)
        x[static_cast<size_t>(c * plane + (y + lb.pad_top) * lb.dst_w + xx + lb.pad_left)] =
            static_cast<float>(fitted.rgb[static_cast<size_t>((y * lb.new_w + xx) * 3 + c)]) /
            255.f;
  return x;
}

bool mask_at(const edgeseg::Masks& m, size_t i, int64_t x, int64_t y) {  // x, y inside crop i
  const int64_t w = m.rects[4 * i + 2];
  const uint8_t byte = m.bits[static_cast<size_t>(m.offsets[i] + y * ((w + 7) / 8) + x / 8)];
  return (byte >> (x % 8)) & 1;
}

void draw(Image& img, const edgeseg::Instances& found) {
  static const uint8_t palette[6][3] = {{255, 56, 56},   {56, 56, 255},  {56, 255, 56},
                                        {255, 157, 151}, {255, 178, 29}, {207, 210, 49}};
  const auto& m = found.masks;
  for (size_t i = 0; i < static_cast<size_t>(found.size()); ++i) {
    const uint8_t* colour = palette[found.classes[i] % 6];
    const int64_t x0 = m.rects[4 * i], y0 = m.rects[4 * i + 1], w = m.rects[4 * i + 2],
                  h = m.rects[4 * i + 3];
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) {
        const bool edge = x == 0 || y == 0 || x == w - 1 || y == h - 1;
        if (!edge && !mask_at(m, i, x, y)) continue;
        uint8_t* px = &img.rgb[static_cast<size_t>(((y0 + y) * img.w + x0 + x) * 3)];
        for (int c = 0; c < 3; ++c)
          px[c] = edge ? colour[c] : static_cast<uint8_t>(0.55f * px[c] + 0.45f * colour[c]);
      }
  }
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

int run(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: %s MODEL.onnx IMAGE.jpg|IMAGE.ppm [--out annotated.jpg|.ppm] "
                 "[--conf 0.25] [--iou 0.7]\n",
                 argv[0]);
    return 2;
  }
  const std::string model_path = argv[1], image_path = argv[2];
  std::string out_path;
  edgeseg::PostprocessOptions opt;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--out")
      out_path = argv[i + 1];
    else if (flag == "--conf")
      opt.conf = std::stof(argv[i + 1]);
    else if (flag == "--iou")
      opt.iou = std::stof(argv[i + 1]);
    else
      throw std::runtime_error("unknown option " + flag);
  }

  Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "edgeseg");
  Ort::SessionOptions so;
  Ort::Session session(env, model_path.c_str(), so);
  Ort::AllocatorWithDefaultOptions alloc;
  edgeseg::Metadata meta;
  Ort::ModelMetadata model_meta = session.GetModelMetadata();
  for (const auto& key : model_meta.GetCustomMetadataMapKeysAllocated(alloc))
    meta[key.get()] = model_meta.LookupCustomMetadataMapAllocated(key.get(), alloc).get();
  std::vector<int64_t> input_shape =
      session.GetInputTypeInfo(0).GetTensorTypeAndShapeInfo().GetShape();
  std::vector<std::vector<int64_t>> output_shapes;
  std::vector<std::string> output_names;
  for (size_t i = 0; i < session.GetOutputCount(); ++i) {
    output_shapes.push_back(session.GetOutputTypeInfo(i).GetTensorTypeAndShapeInfo().GetShape());
    output_names.push_back(session.GetOutputNameAllocated(i, alloc).get());
  }
  const edgeseg::YoloLayout layout = edgeseg::yolo_layout(output_shapes, input_shape, meta);
  if (input_shape[2] <= 0 || input_shape[3] <= 0)
    throw std::runtime_error("this example needs a model of fixed input size (NCHW)");
  const int64_t in_h = input_shape[2], in_w = input_shape[3];

  Image img = ends_with(image_path, ".ppm") ? read_ppm(image_path) : read_jpeg(image_path);
  const edgeseg::Letterbox lb = edgeseg::make_letterbox(img.h, img.w, in_h, in_w);
  std::vector<float> input = to_input(img, lb);
  const std::vector<int64_t> shape = {1, 3, in_h, in_w};
  auto mem = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  Ort::Value tensor =
      Ort::Value::CreateTensor<float>(mem, input.data(), input.size(), shape.data(), shape.size());
  const std::string input_name = session.GetInputNameAllocated(0, alloc).get();
  const char* in_names[] = {input_name.c_str()};
  std::vector<const char*> out_names;
  for (const auto& n : output_names) out_names.push_back(n.c_str());
  std::vector<Ort::Value> outputs = session.Run(Ort::RunOptions{nullptr}, in_names, &tensor, 1,
                                                out_names.data(), out_names.size());

  std::vector<edgeseg::Tensor> views;  // one image: the batch dimension left out
  for (auto& o : outputs) {
    auto info = o.GetTensorTypeAndShapeInfo();
    if (info.GetElementType() != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT)
      throw std::runtime_error("this example reads float32 outputs");
    std::vector<int64_t> s = info.GetShape();
    views.push_back(
        {o.GetTensorData<float>(), edgeseg::DType::kFloat32, {s.begin() + 1, s.end()}, {}, {}});
  }
  const edgeseg::Instances found = edgeseg::postprocess_yolo(layout, views, lb, opt);

  for (size_t i = 0; i < static_cast<size_t>(found.size()); ++i) {
    const auto& m = found.masks;
    const auto counts =
        edgeseg::rle_counts(m.bits.data() + m.offsets[i], m.rects[4 * i], m.rects[4 * i + 1],
                            m.rects[4 * i + 2], m.rects[4 * i + 3], img.h, img.w);
    const int32_t cls = found.classes[i];
    const std::string name = static_cast<size_t>(cls) < layout.names.size()
                                 ? layout.names[static_cast<size_t>(cls)]
                                 : "";
    std::printf(
        "{\"class_id\": %d, \"name\": %s, \"score\": %.9g, \"box\": [%.9g, %.9g, %.9g, %.9g], "
        "\"area\": %lld, \"rle\": %s}\n",
        cls, json_string(name).c_str(), found.scores[i], found.boxes[4 * i], found.boxes[4 * i + 1],
        found.boxes[4 * i + 2], found.boxes[4 * i + 3], static_cast<long long>(m.areas[i]),
        json_string(edgeseg::rle_to_string(counts)).c_str());
  }
  std::fprintf(stderr, "edgeseg %s: %lld instances in %s\n", EDGESEG_VERSION_STRING,
               static_cast<long long>(found.size()), image_path.c_str());
  if (!out_path.empty()) {
    draw(img, found);
    ends_with(out_path, ".ppm") ? write_ppm(out_path, img) : write_jpeg(out_path, img);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {  // edgeseg::InvalidArgument, Ort::Exception, I/O
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
