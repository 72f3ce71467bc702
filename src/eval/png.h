// PNG output of generated samples: a grid of images (for eyeballing a model) written with libpng.
#pragma once
#include <torch/torch.h>

#include <string>

namespace dualign::eval {

struct GridOptions {
  int64_t nrow = 8;       // images per row
  int64_t padding = 2;    // pixels between images and around the grid
  double pad_value = 0;   // grey level of the padding in [0, 1] (0 = black)
  int64_t max_images = 64;  // only the first max_images images are drawn (<= 0: all)
};

// images [N, C, H, W] with values in [-1, 1] (clamped), C = 1 (grey) or 3 (RGB) → one uint8 picture
// [rows*(H+p)+p, nrow*(W+p)+p, C], images in row-major order, empty cells filled with the padding colour.
torch::Tensor make_grid(const torch::Tensor& images, const GridOptions& options = {});

// An 8-bit grey or RGB PNG from [H, W, C] uint8 (C = 1 or 3), encoded in memory (e.g. for TensorBoard).
std::string encode_png(const torch::Tensor& hwc_uint8);
// The same, written to a file. Errors name the file.
void write_png(const std::string& path, const torch::Tensor& hwc_uint8);

// make_grid + write_png.
void write_image_grid(const std::string& path, const torch::Tensor& images, const GridOptions& options = {});

// A scatter plot of 2-D points [N, 2] (white background, dark dots; optional second set in red) as a uint8
// picture [size, size, 3] over the square [-extent, extent]^2. For a quick look only; the Python report plots
// properly.
torch::Tensor draw_scatter(const torch::Tensor& points, const torch::Tensor& other = {}, int64_t size = 400,
                           double extent = 4.0);
// draw_scatter written as a PNG.
void write_scatter_png(const std::string& path, const torch::Tensor& points, const torch::Tensor& other = {},
                       int64_t size = 400, double extent = 4.0);

}  // namespace dualign::eval
