// slimnn/data/fashion_mnist.hpp — loads Fashion-MNIST (or any MNIST-format set of
// 10-class byte images) from its four IDX files.
//
// Files: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte, each plain or with ".gz" (the plain file wins if both exist).
// Images become columns of rows*cols values pixel/255 in [0, 1], sample_shape
// (1, rows, cols) — (1, 28, 28) for the real set — and labels in [0, 10).
// Any missing, corrupt or inconsistent file throws format_error naming the file(s).
// Complexity: one pass over the files; the full set takes 70000 x 784 scalars.
// Thread safety: load_fashion_mnist is reentrant.
//
// Component: slimnn::data (adds zlib).
#pragma once

#include <algorithm>
#include <array>
#include <filesystem>
#include <string>
#include <string_view>

#include "slimnn/data/dataset.hpp"
#include "slimnn/data/idx.hpp"

namespace slimnn {

/// Where the Debian package dataset-fashion-mnist installs the files.
inline const std::filesystem::path fashion_mnist_default_dir = "/usr/share/datasets/fashion-mnist";

template <class T>
struct fashion_mnist {
  dataset<T> train, test;

  /// Name of each label: class_names()[y].
  static constexpr std::array<std::string_view, 10> class_names() {
    return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
            "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  }
};

namespace detail {

inline constexpr const char* fashion_mnist_hint =
    "install the Debian package dataset-fashion-mnist or pass --data DIR";

/// dir/name if it exists, else dir/name.gz; throws format_error if neither does.
inline std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& name) {
  std::error_code ec;
  const auto plain = dir / name;
  if (std::filesystem::exists(plain, ec)) return plain;
  const auto gz = dir / (name + ".gz");
  if (std::filesystem::exists(gz, ec)) return gz;
  throw format_error(cat(plain.string(), "(.gz): not found; ", fashion_mnist_hint));
}

/// One split: the image file (count x rows x cols) and the label file (count).
template <class T>
dataset<T> load_mnist_split(const std::filesystem::path& images_path,
                            const std::filesystem::path& labels_path, index_t limit) {
  const idx_array images = read_idx(images_path);
  const idx_array labels = read_idx(labels_path);
  const auto& d = images.dims;
  require<format_error>(d.size() == 3 && d[1] > 0 && d[2] > 0, images_path.string(),
                        ": expected images (count x rows x cols), got a ", d.size(), "-D array");
  require<format_error>(labels.dims.size() == 1, labels_path.string(),
                        ": expected a 1-D array of labels, got a ", labels.dims.size(), "-D array");
  require<format_error>(images.count() == labels.count(), images_path.string(), " has ",
                        images.count(), " images but ", labels_path.string(), " has ",
                        labels.count(), " labels");
  require<format_error>(images.count() > 0, images_path.string(), ": no images");
  const auto bad = std::find_if(labels.data.begin(), labels.data.end(), [](auto v) { return v >= 10; });
  if (bad != labels.data.end())
    throw format_error(cat(labels_path.string(), ": label ", int(*bad), " of sample ",
                           bad - labels.data.begin(), " is not in [0, 10)"));

  const index_t n = limit > 0 ? std::min(limit, index_t(images.count())) : index_t(images.count());
  const index_t features = index_t(d[1]) * index_t(d[2]);
  dataset<T> out;
  out.x.resize(features, n);
  // IDX images are row-major per image, one image after another: the same memory
  // order as a column-major features x n matrix with CHW features.
  for (index_t i = 0; i < features * n; ++i) out.x.data()[i] = T(images.data[std::size_t(i)]) / T(255);
  out.y.assign(labels.data.begin(), labels.data.begin() + n);
  out.sample_shape = shape(1, index_t(d[1]), index_t(d[2]));
  out.classes = 10;
  return out;
}

}  // namespace detail

/// Loads the training (60000) and test (10000) splits from `dir`. With limit > 0, keeps
/// at most the first `limit` samples of each split (the files are still fully checked).
/// Throws format_error for missing or bad files, config_error for a negative limit.
template <class T>
fashion_mnist<T> load_fashion_mnist(const std::filesystem::path& dir = fashion_mnist_default_dir,
                                    index_t limit = 0) {
  detail::require<config_error>(limit >= 0, "load_fashion_mnist: limit must be >= 0 (0 = all), got ",
                                limit);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw format_error(detail::cat(dir.string(),
                                   std::filesystem::exists(dir, ec) ? ": not a directory; "
                                                                    : ": directory not found; ",
                                   detail::fashion_mnist_hint));
  const auto train_images = detail::find_idx_file(dir, "train-images-idx3-ubyte");
  const auto train_labels = detail::find_idx_file(dir, "train-labels-idx1-ubyte");
  const auto test_images = detail::find_idx_file(dir, "t10k-images-idx3-ubyte");
  const auto test_labels = detail::find_idx_file(dir, "t10k-labels-idx1-ubyte");

  fashion_mnist<T> out;
  out.train = detail::load_mnist_split<T>(train_images, train_labels, limit);
  out.test = detail::load_mnist_split<T>(test_images, test_labels, limit);
  detail::require<format_error>(out.train.sample_shape == out.test.sample_shape, train_images.string(),
                                " has ", out.train.sample_shape.h, 'x', out.train.sample_shape.w,
                                " images but ", test_images.string(), " has ",
                                out.test.sample_shape.h, 'x', out.test.sample_shape.w);
  return out;
}

}  // namespace slimnn
