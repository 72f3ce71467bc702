#include "eval/png.h"

#include <png.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <memory>

#include "util/error.h"

namespace dualign::eval {

torch::Tensor make_grid(const torch::Tensor& images_in, const GridOptions& o) {
  DUALIGN_CHECK(images_in.dim() == 4 && (images_in.size(1) == 1 || images_in.size(1) == 3),
                "image grid: expected images [N, C, H, W] with C = 1 or 3, got {}", c10::str(images_in.sizes()));
  DUALIGN_CHECK(images_in.size(0) > 0 && o.nrow > 0 && o.padding >= 0, "image grid: need N > 0, nrow > 0, padding >= 0");
  auto images = images_in.detach().to(torch::kCPU, torch::kFloat32);
  if (o.max_images > 0 && images.size(0) > o.max_images) images = images.narrow(0, 0, o.max_images);
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3), p = o.padding;
  const int64_t cols = std::min(o.nrow, n), rows = (n + cols - 1) / cols;
  auto pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch::kUInt8).permute({0, 2, 3, 1});  // NHWC
  const auto pad = static_cast<uint8_t>(std::lround(std::clamp(o.pad_value, 0.0, 1.0) * 255));
  auto grid = torch::full({rows * (h + p) + p, cols * (w + p) + p, c}, pad, torch::kUInt8);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = p + (i / cols) * (h + p), x = p + (i % cols) * (w + p);
    grid.narrow(0, y, h).narrow(1, x, w).copy_(pixels[i]);
  }
  return grid;
}

namespace {

void append_to_string(png_structp png, png_bytep data, png_size_t length) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), length);
}

}  // namespace

std::string encode_png(const torch::Tensor& hwc_in) {
  DUALIGN_CHECK(hwc_in.dim() == 3 && hwc_in.scalar_type() == torch::kUInt8 && (hwc_in.size(2) == 1 || hwc_in.size(2) == 3),
                "encode_png: expected uint8 [H, W, 1|3], got {} {}", c10::toString(hwc_in.scalar_type()),
                c10::str(hwc_in.sizes()));
  auto hwc = hwc_in.contiguous();
  const auto height = static_cast<png_uint_32>(hwc.size(0)), width = static_cast<png_uint_32>(hwc.size(1));
  const int channels = static_cast<int>(hwc.size(2));
  std::string out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, nullptr);
    fail("encode_png: libpng initialisation failed");
  }
  // libpng reports errors by longjmp; nothing with a destructor is created between here and the end.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    fail("encode_png: libpng error");
  }
  png_set_write_fn(png, &out, append_to_string, nullptr);
  png_set_IHDR(png, info, width, height, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  auto* data = hwc.data_ptr<uint8_t>();
  const size_t stride = size_t(width) * size_t(channels);
  for (png_uint_32 y = 0; y < height; ++y) png_write_row(png, data + y * stride);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

void write_png(const std::string& path, const torch::Tensor& hwc) {
  const std::string bytes = encode_png(hwc);
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) fail("cannot write PNG {}: {}", path, std::strerror(errno));
  if (std::fwrite(bytes.data(), 1, bytes.size(), file.get()) != bytes.size() || std::fflush(file.get()) != 0)
    fail("cannot write PNG {}: {}", path, std::strerror(errno));
}

void write_image_grid(const std::string& path, const torch::Tensor& images, const GridOptions& options) {
  write_png(path, make_grid(images, options));
}

torch::Tensor draw_scatter(const torch::Tensor& points, const torch::Tensor& other, int64_t size, double extent) {
  DUALIGN_CHECK(points.dim() == 2 && points.size(1) == 2, "scatter plot: expected points [N, 2], got {}",
                c10::str(points.sizes()));
  DUALIGN_CHECK(size > 8 && extent > 0, "scatter plot: need size > 8 and extent > 0");
  auto img = torch::full({size, size, 3}, 255, torch::kUInt8);
  auto acc = img.accessor<uint8_t, 3>();
  auto draw = [&](const torch::Tensor& pts, std::array<uint8_t, 3> colour) {
    auto p = pts.detach().to(torch::kCPU, torch::kFloat64).contiguous();
    auto a = p.accessor<double, 2>();
    for (int64_t i = 0; i < p.size(0); ++i) {
      const auto cx = static_cast<int64_t>((a[i][0] + extent) / (2 * extent) * double(size));
      const auto cy = static_cast<int64_t>((extent - a[i][1]) / (2 * extent) * double(size));  // y up
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t x = cx + dx, y = cy + dy;
          if (x < 0 || y < 0 || x >= size || y >= size) continue;
          for (int k = 0; k < 3; ++k) acc[y][x][k] = colour[k];
        }
    }
  };
  draw(points, {40, 40, 120});
  if (other.defined()) {
    DUALIGN_CHECK(other.dim() == 2 && other.size(1) == 2, "scatter plot: expected second set [M, 2], got {}",
                  c10::str(other.sizes()));
    draw(other, {210, 40, 40});
  }
  return img;
}

void write_scatter_png(const std::string& path, const torch::Tensor& points, const torch::Tensor& other, int64_t size,
                       double extent) {
  try {
    write_png(path, draw_scatter(points, other, size, extent));
  } catch (const Error& e) {
    fail("scatter PNG {}: {}", path, e.what());
  }
}

}  // namespace dualign::eval
