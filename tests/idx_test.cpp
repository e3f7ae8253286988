// Tests of the data module: IDX reading (plain and gzipped, every failure path),
// the Fashion-MNIST loader on tiny fake files (and on the real set when installed),
// subset and make_blobs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "slimnn/data/dataset.hpp"
#include "slimnn/data/fashion_mnist.hpp"
#include "slimnn/data/idx.hpp"
#include "slimnn/data/synthetic.hpp"

namespace {

namespace fs = std::filesystem;
using bytes = std::vector<std::uint8_t>;
using testing::AllOf;
using testing::HasSubstr;

bytes idx_file(const std::vector<std::uint32_t>& dims, const bytes& data, std::uint8_t type = 0x08) {
  bytes out = {0, 0, type, std::uint8_t(dims.size())};
  for (std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(std::uint8_t(d >> shift));
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

bytes iota_bytes(std::size_t n, unsigned step = 1) {
  bytes out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = std::uint8_t(i * step);
  return out;
}

/// Bytes that deflate cannot shrink much, so a .gz of them is long enough to damage.
bytes noise_bytes(std::size_t n) {
  std::mt19937 gen(7);
  bytes out(n);
  for (auto& b : out) b = std::uint8_t(gen());
  return out;
}

void write_plain(const fs::path& path, const bytes& content) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(content.data()), std::streamsize(content.size()));
  ASSERT_TRUE(out.good()) << path;
}

void write_gz(const fs::path& path, const bytes& content) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, content.data(), unsigned(content.size())), int(content.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

bytes read_all(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return bytes(std::istreambuf_iterator<char>(in), {});
}

/// The message of the format_error that f throws ("" and a test failure if none).
template <class F>
std::string format_error_of(F&& f) {
  try {
    f();
  } catch (const slimnn::format_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected slimnn::format_error";
  return "";
}

class data_test : public testing::Test {
 protected:
  void SetUp() override {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    dir = fs::temp_directory_path() /
          ("slimnn-" + std::string(info->name()) + "-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string read_error(const fs::path& path) {
    return format_error_of([&] { slimnn::read_idx(path); });
  }

  fs::path dir;
};

// ---------------------------------------------------------------- read_idx

TEST_F(data_test, round_trip_3d_plain_and_gzip) {
  const bytes data = iota_bytes(2 * 3 * 4, 7);
  write_plain(dir / "a.idx", idx_file({2, 3, 4}, data));
  write_gz(dir / "a.idx.gz", idx_file({2, 3, 4}, data));
  for (const char* name : {"a.idx", "a.idx.gz"}) {
    const slimnn::idx_array a = slimnn::read_idx(dir / name);
    EXPECT_EQ(a.dims, (std::vector<std::uint32_t>{2, 3, 4})) << name;
    EXPECT_EQ(a.data, data) << name;
    EXPECT_EQ(a.count(), 2u) << name;
  }
}

TEST_F(data_test, round_trip_1d_plain_and_gzip) {
  const bytes data = {3, 1, 4, 1, 5, 9, 2};
  write_plain(dir / "l.idx", idx_file({7}, data));
  write_gz(dir / "l.idx.gz", idx_file({7}, data));
  for (const char* name : {"l.idx", "l.idx.gz"}) {
    const slimnn::idx_array a = slimnn::read_idx(dir / name);
    EXPECT_EQ(a.dims, std::vector<std::uint32_t>{7}) << name;
    EXPECT_EQ(a.data, data) << name;
    EXPECT_EQ(a.count(), 7u) << name;
  }
}

TEST_F(data_test, round_trip_large_gzip_and_zero_extent) {
  const bytes data = noise_bytes(3 * 1000 * 700);  // several read chunks
  write_gz(dir / "big.gz", idx_file({3, 1000, 700}, data));
  EXPECT_EQ(slimnn::read_idx(dir / "big.gz").data, data);

  write_plain(dir / "empty.idx", idx_file({0, 28, 28}, {}));
  const slimnn::idx_array e = slimnn::read_idx(dir / "empty.idx");
  EXPECT_EQ(e.count(), 0u);
  EXPECT_TRUE(e.data.empty());
}

TEST_F(data_test, missing_file) {
  const fs::path path = dir / "train-images-idx3-ubyte.gz";
  EXPECT_THAT(read_error(path), AllOf(HasSubstr("slimnn: " + path.string()), HasSubstr("cannot open file")));
}

TEST_F(data_test, directory_instead_of_file) {
  EXPECT_THAT(read_error(dir), AllOf(HasSubstr(dir.string()), HasSubstr("is a directory")));
}

TEST_F(data_test, empty_file) {
  write_plain(dir / "empty", {});
  EXPECT_THAT(read_error(dir / "empty"), HasSubstr((dir / "empty").string() + ": empty file"));
}

TEST_F(data_test, truncated_header) {
  write_plain(dir / "short_magic", {0, 0});
  EXPECT_THAT(read_error(dir / "short_magic"),
              HasSubstr((dir / "short_magic").string() + ": truncated header: need 4 bytes, file has 2"));
  bytes header = idx_file({10, 28, 28}, {});
  header.resize(10);
  write_plain(dir / "short_dims", header);
  write_gz(dir / "short_dims.gz", header);
  EXPECT_THAT(read_error(dir / "short_dims"),
              HasSubstr((dir / "short_dims").string() + ": truncated header: need 16 bytes, file has 10"));
  EXPECT_THAT(read_error(dir / "short_dims.gz"),
              HasSubstr("truncated header: need 16 bytes, decompressed file has 10"));
}

TEST_F(data_test, truncated_data_plain_and_gzip) {
  const bytes file = idx_file({60000, 28, 28}, iota_bytes(1000));
  write_plain(dir / "t", file);
  write_gz(dir / "t.gz", file);
  EXPECT_THAT(read_error(dir / "t"),
              HasSubstr((dir / "t").string() + ": truncated: header says 47040000 data bytes, file has 1000"));
  EXPECT_THAT(read_error(dir / "t.gz"),
              AllOf(HasSubstr((dir / "t.gz").string()),
                    HasSubstr("truncated: header says 47040000 data bytes, decompressed file has 1000")));
}

TEST_F(data_test, cut_off_gzip_file) {
  write_gz(dir / "full.gz", idx_file({20, 28, 28}, noise_bytes(20 * 28 * 28)));
  bytes gz = read_all(dir / "full.gz");
  gz.resize(gz.size() / 2);
  write_plain(dir / "cut.gz", gz);
  EXPECT_THAT(read_error(dir / "cut.gz"),
              AllOf(HasSubstr((dir / "cut.gz").string()), HasSubstr("truncated: header says 15680 data bytes"),
                    HasSubstr("gzip stream cut off")));
  // Cut inside the 8-byte trailer: all data arrives but the checksum does not.
  gz = read_all(dir / "full.gz");
  gz.resize(gz.size() - 3);
  write_plain(dir / "no_trailer.gz", gz);
  EXPECT_THAT(read_error(dir / "no_trailer.gz"), HasSubstr("corrupt gzip stream: unexpected end of file"));
}

TEST_F(data_test, corrupt_gzip) {
  write_gz(dir / "good.gz", idx_file({20, 28, 28}, noise_bytes(20 * 28 * 28)));
  bytes gz = read_all(dir / "good.gz");
  for (std::size_t i = gz.size() / 2; i < gz.size() / 2 + 8; ++i) gz[i] ^= 0x5a;
  write_plain(dir / "bad.gz", gz);
  const std::string message = read_error(dir / "bad.gz");
  EXPECT_THAT(message, HasSubstr((dir / "bad.gz").string() + ": corrupt gzip stream: "));
  EXPECT_THAT(message, testing::Not(HasSubstr((dir / "bad.gz").string() + ": " + (dir / "bad.gz").string())));
}

TEST_F(data_test, bad_magic) {
  write_plain(dir / "m", {0x00, 0x00, 0x0a, 0x08, 1, 2, 3});
  EXPECT_THAT(read_error(dir / "m"),
              HasSubstr((dir / "m").string() + ": bad magic 0x00000a08 (expected 0x0000080N)"));
  write_plain(dir / "text", {'h', 'e', 'l', 'l', 'o'});
  EXPECT_THAT(read_error(dir / "text"), HasSubstr("bad magic 0x68656c6c (expected 0x0000080N)"));
  write_plain(dir / "dims0", {0, 0, 8, 0});
  EXPECT_THAT(read_error(dir / "dims0"), HasSubstr("bad magic 0x00000800: 0 dimensions (expected 1 to 4)"));
  write_plain(dir / "dims5", idx_file({1, 1, 1, 1, 1}, {7}));
  EXPECT_THAT(read_error(dir / "dims5"), HasSubstr("bad magic 0x00000805: 5 dimensions (expected 1 to 4)"));
}

TEST_F(data_test, unsupported_type) {
  write_plain(dir / "f", idx_file({2}, bytes(8), 0x0d));
  EXPECT_THAT(read_error(dir / "f"),
              HasSubstr((dir / "f").string() + ": unsupported element type 0x0d (only unsigned byte 0x08)"));
}

TEST_F(data_test, trailing_bytes_plain_and_gzip) {
  const bytes file = idx_file({2, 2}, {1, 2, 3, 4, 5, 6, 7});
  write_plain(dir / "x", file);
  write_gz(dir / "x.gz", file);
  EXPECT_THAT(read_error(dir / "x"), HasSubstr((dir / "x").string() + ": 3 trailing bytes after the data"));
  EXPECT_THAT(read_error(dir / "x.gz"), HasSubstr((dir / "x.gz").string() + ": 3 trailing bytes after the data"));
}

TEST_F(data_test, absurd_size_throws_before_allocating) {
  write_plain(dir / "huge", idx_file({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {1, 2, 3}));
  EXPECT_THAT(read_error(dir / "huge"),
              AllOf(HasSubstr((dir / "huge").string()),
                    HasSubstr("header claims 4294967295x4294967295x4294967295x4294967295 bytes of data, "
                              "more than the 1 GiB limit")));
  write_gz(dir / "big.gz", idx_file({100000, 1000, 1000}, {1, 2, 3}));
  EXPECT_THAT(read_error(dir / "big.gz"), HasSubstr("more than the 1 GiB limit"));
  // Just under the limit: refused as truncated, with only what the file holds allocated.
  write_plain(dir / "lying", idx_file({1023, 1024, 1024}, {1, 2, 3}));
  EXPECT_THAT(read_error(dir / "lying"), HasSubstr("truncated: header says 1072693248 data bytes, file has 3"));
}

// ---------------------------------------------------------------- fashion-mnist

constexpr int side = 28;

bytes fake_images(int count, int seed) {
  bytes pixels(std::size_t(count) * side * side);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = std::uint8_t(i * 13 + std::size_t(seed));
  return pixels;
}

class fashion_test : public data_test {
 protected:
  void SetUp() override {
    data_test::SetUp();
    train_pixels = fake_images(5, 1);
    test_pixels = fake_images(3, 2);
    write_gz(dir / "train-images-idx3-ubyte.gz", idx_file({5, side, side}, train_pixels));
    write_plain(dir / "train-labels-idx1-ubyte", idx_file({5}, {0, 3, 9, 1, 4}));
    write_plain(dir / "t10k-images-idx3-ubyte", idx_file({3, side, side}, test_pixels));
    write_gz(dir / "t10k-labels-idx1-ubyte.gz", idx_file({3}, {9, 8, 7}));
  }
  std::string load_error() {
    return format_error_of([&] { slimnn::load_fashion_mnist<float>(dir); });
  }
  bytes train_pixels, test_pixels;
};

TEST_F(fashion_test, loads_fake_directory) {
  const auto data = slimnn::load_fashion_mnist<float>(dir);
  EXPECT_EQ(data.train.size(), 5);
  EXPECT_EQ(data.test.size(), 3);
  EXPECT_EQ(data.train.x.rows(), side * side);
  EXPECT_EQ(data.train.sample_shape, slimnn::shape(1, side, side));
  EXPECT_EQ(data.test.sample_shape, slimnn::shape(1, side, side));
  EXPECT_EQ(data.train.classes, 10);
  EXPECT_EQ(data.train.y, (std::vector<int>{0, 3, 9, 1, 4}));
  EXPECT_EQ(data.test.y, (std::vector<int>{9, 8, 7}));
  // Sample s, pixel (r, c) is feature r * 28 + c of column s.
  EXPECT_FLOAT_EQ(data.train.x(2 * side + 5, 4), train_pixels[4 * side * side + 2 * side + 5] / 255.0f);
  for (slimnn::index_t s = 0; s < 3; ++s)
    for (slimnn::index_t f = 0; f < side * side; ++f)
      ASSERT_FLOAT_EQ(data.test.x(f, s), test_pixels[std::size_t(s * side * side + f)] / 255.0f);
  EXPECT_GE(data.train.x.minCoeff(), 0.0f);
  EXPECT_LE(data.train.x.maxCoeff(), 1.0f);
  EXPECT_EQ(decltype(data)::class_names()[9], "Ankle boot");
  EXPECT_EQ(decltype(data)::class_names()[0], "T-shirt/top");
}

TEST_F(fashion_test, limit_keeps_the_first_samples) {
  const auto two = slimnn::load_fashion_mnist<double>(dir, 2);
  EXPECT_EQ(two.train.size(), 2);
  EXPECT_EQ(two.test.size(), 2);
  EXPECT_EQ(two.train.y, (std::vector<int>{0, 3}));
  EXPECT_EQ(two.test.y, (std::vector<int>{9, 8}));
  const auto all = slimnn::load_fashion_mnist<double>(dir, 100);
  EXPECT_EQ(all.train.size(), 5);
  EXPECT_EQ(all.test.size(), 3);
  EXPECT_THROW(slimnn::load_fashion_mnist<float>(dir, -1), slimnn::config_error);
}

TEST_F(fashion_test, plain_file_wins_over_gzip) {
  write_plain(dir / "t10k-labels-idx1-ubyte", idx_file({3}, {1, 2, 3}));
  EXPECT_EQ(slimnn::load_fashion_mnist<float>(dir).test.y, (std::vector<int>{1, 2, 3}));
}

TEST_F(fashion_test, label_count_mismatch_names_both_files) {
  write_plain(dir / "train-labels-idx1-ubyte", idx_file({4}, {0, 1, 2, 3}));
  EXPECT_THAT(load_error(),
              HasSubstr((dir / "train-images-idx3-ubyte.gz").string() + " has 5 images but " +
                        (dir / "train-labels-idx1-ubyte").string() + " has 4 labels"));
}

TEST_F(fashion_test, label_out_of_range) {
  write_plain(dir / "train-labels-idx1-ubyte", idx_file({5}, {0, 1, 12, 3, 4}));
  EXPECT_THAT(load_error(), HasSubstr((dir / "train-labels-idx1-ubyte").string() +
                                      ": label 12 of sample 2 is not in [0, 10)"));
}

TEST_F(fashion_test, wrong_ranks) {
  write_plain(dir / "t10k-images-idx3-ubyte", idx_file({3, side * side}, test_pixels));
  EXPECT_THAT(load_error(), HasSubstr((dir / "t10k-images-idx3-ubyte").string() +
                                      ": expected images (count x rows x cols), got a 2-D array"));
  write_plain(dir / "t10k-images-idx3-ubyte", idx_file({3, side, side}, test_pixels));
  write_plain(dir / "t10k-labels-idx1-ubyte", idx_file({3, 1}, {1, 2, 3}));
  EXPECT_THAT(load_error(), HasSubstr("t10k-labels-idx1-ubyte: expected a 1-D array of labels, got a 2-D array"));
}

TEST_F(fashion_test, train_and_test_image_sizes_must_agree) {
  write_plain(dir / "t10k-images-idx3-ubyte", idx_file({3, 14, 56}, test_pixels));
  EXPECT_THAT(load_error(), HasSubstr((dir / "train-images-idx3-ubyte.gz").string() + " has 28x28 images but " +
                                      (dir / "t10k-images-idx3-ubyte").string() + " has 14x56"));
}

TEST_F(fashion_test, missing_file_or_directory_gives_a_hint) {
  fs::remove(dir / "t10k-labels-idx1-ubyte.gz");
  EXPECT_THAT(load_error(), AllOf(HasSubstr((dir / "t10k-labels-idx1-ubyte").string() + "(.gz): not found"),
                                  HasSubstr("install the Debian package dataset-fashion-mnist or pass --data DIR")));
  const fs::path nowhere = dir / "nowhere";
  EXPECT_THAT(format_error_of([&] { slimnn::load_fashion_mnist<float>(nowhere); }),
              AllOf(HasSubstr(nowhere.string() + ": directory not found"),
                    HasSubstr("install the Debian package dataset-fashion-mnist or pass --data DIR")));
}

TEST(fashion_mnist_real, loads_installed_data_set) {
  if (!fs::is_directory(slimnn::fashion_mnist_default_dir))
    GTEST_SKIP() << slimnn::fashion_mnist_default_dir << " not installed";
  const auto data = slimnn::load_fashion_mnist<float>();
  EXPECT_EQ(data.train.size(), 60000);
  EXPECT_EQ(data.test.size(), 10000);
  EXPECT_EQ(data.train.sample_shape, slimnn::shape(1, 28, 28));
  EXPECT_EQ(data.train.x.rows(), 784);
  for (const auto* split : {&data.train, &data.test}) {
    EXPECT_EQ(split->y.size(), std::size_t(split->size()));
    for (int label : split->y) ASSERT_TRUE(label >= 0 && label < 10) << label;
  }
  EXPECT_EQ(data.train.y[0], 9);  // the first training image is an ankle boot
  EXPECT_GE(data.train.x.minCoeff(), 0.0f);
  EXPECT_FLOAT_EQ(data.train.x.maxCoeff(), 1.0f);
}

// ---------------------------------------------------------------- subset

TEST(subset, copies_a_range) {
  slimnn::rng_t rng(1);
  const auto all = slimnn::make_blobs<float>(10, slimnn::shape(2, 2, 2), 3, 0.1, rng);
  const auto part = slimnn::subset(all, 4, 3);
  EXPECT_EQ(part.size(), 3);
  EXPECT_EQ(part.x, all.x.middleCols(4, 3));
  EXPECT_EQ(part.y, (std::vector<int>(all.y.begin() + 4, all.y.begin() + 7)));
  EXPECT_EQ(part.sample_shape, all.sample_shape);
  EXPECT_EQ(part.classes, 3);
  EXPECT_EQ(slimnn::subset(all, 10, 0).size(), 0);
}

TEST(subset, range_errors) {
  slimnn::rng_t rng(1);
  const auto all = slimnn::make_blobs<float>(10, slimnn::shape::flat(4), 2, 0.1, rng);
  EXPECT_THROW(slimnn::subset(all, -1, 2), slimnn::config_error);
  EXPECT_THROW(slimnn::subset(all, 0, -2), slimnn::config_error);
  EXPECT_THROW(slimnn::subset(all, 11, 0), slimnn::shape_error);
  try {
    slimnn::subset(all, 8, 3);
    ADD_FAILURE() << "expected shape_error";
  } catch (const slimnn::shape_error& e) {
    EXPECT_STREQ(e.what(), "slimnn: subset: 3 samples from index 8 out of range for a data set of 10 samples");
  }
  auto broken = all;
  broken.y.pop_back();
  EXPECT_THROW(slimnn::subset(broken, 0, 1), slimnn::shape_error);
}

// ---------------------------------------------------------------- make_blobs

TEST(make_blobs, shapes_labels_and_reproducibility) {
  const slimnn::shape s(1, 4, 4);
  slimnn::rng_t a(42), b(42), c(43);
  const auto x = slimnn::make_blobs<double>(50, s, 5, 0.2, a);
  const auto y = slimnn::make_blobs<double>(50, s, 5, 0.2, b);
  const auto z = slimnn::make_blobs<double>(50, s, 5, 0.2, c);
  EXPECT_EQ(x.x.rows(), 16);
  EXPECT_EQ(x.size(), 50);
  EXPECT_EQ(x.y.size(), 50u);
  EXPECT_EQ(x.sample_shape, s);
  EXPECT_EQ(x.classes, 5);
  for (int label : x.y) EXPECT_TRUE(label >= 0 && label < 5);
  EXPECT_EQ(std::count(x.y.begin(), x.y.end(), 3), 10);
  EXPECT_EQ(x.x, y.x);
  EXPECT_EQ(x.y, y.y);
  EXPECT_NE(x.x, z.x);
}

TEST(make_blobs, is_learnable_by_nearest_class_mean) {
  slimnn::rng_t rng(3);
  const auto d = slimnn::make_blobs<float>(400, slimnn::shape::flat(8), 4, 0.3, rng);
  slimnn::matrix<float> means = slimnn::matrix<float>::Zero(8, 4);
  for (slimnn::index_t s = 0; s < d.size(); ++s) means.col(d.y[std::size_t(s)]) += d.x.col(s) / 100.0f;
  int right = 0;
  for (slimnn::index_t s = 0; s < d.size(); ++s) {
    Eigen::Index best = 0;
    (means.colwise() - d.x.col(s)).colwise().squaredNorm().minCoeff(&best);
    right += best == d.y[std::size_t(s)];
  }
  EXPECT_GE(right, 380);
}

TEST(make_blobs, rejects_bad_settings) {
  slimnn::rng_t rng(0);
  EXPECT_THROW(slimnn::make_blobs<float>(-1, slimnn::shape::flat(2), 2, 0.1, rng), slimnn::config_error);
  EXPECT_THROW(slimnn::make_blobs<float>(4, slimnn::shape(0, 1, 1), 2, 0.1, rng), slimnn::config_error);
  EXPECT_THROW(slimnn::make_blobs<float>(4, slimnn::shape::flat(2), 0, 0.1, rng), slimnn::config_error);
  EXPECT_THROW(slimnn::make_blobs<float>(4, slimnn::shape::flat(2), 2, -1.0, rng), slimnn::config_error);
}

}  // namespace
