// Writes the seed corpora of safetensors_fuzz (small valid network and tensor files, and
// a few broken ones) and of idx_fuzz (small plain and gzipped IDX files, valid and not).
// tests/fuzz/corpus and tests/fuzz/idx_corpus hold its output:
//   make_corpus tests/fuzz/corpus tests/fuzz/idx_corpus
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "slimnn/slimnn.hpp"

namespace {

using namespace slimnn;

void write(const std::filesystem::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

std::vector<std::byte> network_bytes(const network<float>& net) {
  safetensors_writer out;
  write_network(net, out);
  return out.bytes();
}

std::vector<std::byte> hand(const std::string& header, std::size_t data_bytes, std::uint64_t declared) {
  std::vector<std::byte> out(8 + header.size() + data_bytes, std::byte(0x3f));
  for (int i = 0; i < 8; ++i) out[std::size_t(i)] = std::byte((declared >> (8 * i)) & 0xff);
  for (std::size_t i = 0; i < header.size(); ++i) out[8 + i] = std::byte(header[i]);
  return out;
}
std::vector<std::byte> hand(const std::string& header, std::size_t data_bytes) {
  return hand(header, data_bytes, header.size());
}

/// The header of an IDX file of unsigned bytes with these extents.
std::vector<std::byte> idx_header(const std::vector<std::uint32_t>& dims) {
  std::vector<std::byte> out{std::byte(0), std::byte(0), std::byte(8), std::byte(dims.size())};
  for (const auto d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(std::byte((d >> shift) & 0xff));
  return out;
}
/// An IDX file with these extents, filled with 0, 1, 2, ...
std::vector<std::byte> idx(const std::vector<std::uint32_t>& dims) {
  auto out = idx_header(dims);
  std::size_t elements = 1;
  for (const auto d : dims) elements *= d;
  for (std::size_t i = 0; i < elements; ++i) out.push_back(std::byte(i & 0xff));
  return out;
}

void write_gzip(const std::filesystem::path& path, const std::vector<std::byte>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb9");
  if (!f || gzwrite(f, bytes.data(), unsigned(bytes.size())) != int(bytes.size()) || gzclose(f) != Z_OK) {
    std::fprintf(stderr, "make_corpus: cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

void write_idx_corpus(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  write(dir / "valid_labels.idx", idx({10}));
  const auto images = idx({3, 4, 5});
  write(dir / "valid_images.idx", images);
  write(dir / "valid_rank4.idx", idx({2, 1, 2, 3}));
  write(dir / "valid_empty.idx", idx({0, 28, 28}));
  write_gzip(dir / "valid_images.idx.gz", images);
  write(dir / "invalid_truncated.idx", {images.begin(), images.end() - 7});
  auto trailing = images;
  trailing.push_back(std::byte(9));
  write(dir / "invalid_trailing.idx", trailing);
  auto float_type = images;
  float_type[2] = std::byte(0x0d);
  write(dir / "invalid_float_type.idx", float_type);
  write(dir / "invalid_huge_header.idx", idx_header({0x10000, 0x10000, 1}));
  write_gzip(dir / "invalid_gzip_cut.idx.gz", images);
  const auto cut = std::filesystem::file_size(dir / "invalid_gzip_cut.idx.gz");
  std::filesystem::resize_file(dir / "invalid_gzip_cut.idx.gz", cut - 6);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_corpus SAFETENSORS_DIR IDX_DIR\n");
    return 2;
  }
  write_idx_corpus(argv[2]);
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  rng_t rng(7);

  network<float> mlp;
  mlp << dense<float>(4, 3, rng) << relu<float>(shape::flat(3)) << dense<float>(3, 2, rng);
  const auto mlp_bytes = network_bytes(mlp);
  write(dir / "valid_mlp.safetensors", mlp_bytes);

  network<float> cnn;
  conv2d<float> conv(shape{1, 4, 4}, {.out_channels = 2, .kernel = 3, .padding = 1}, rng);
  max_pool2d<float> pool(conv.output_shape(), 2);
  avg_pool2d<float> pool2(pool.output_shape(), 2);
  cnn << conv << relu<float>(conv.output_shape()) << pool << pool2 << flatten<float>(pool2.output_shape())
      << dense<float>(2, 2, rng);
  write(dir / "valid_cnn.safetensors", network_bytes(cnn));

  // Every compressed kind, so that mutations reach their loaders.
  dense<float> narrow(8, 4, rng);
  network<float> compressed_mlp;
  compressed_mlp << block_circulant_dense<float>(16, 8, 4, rng) << relu<float>(shape::flat(8))
                 << compress(narrow, smartdeal_settings{.basis_width = 4, .segment_density = 0.5}).layer
                 << compress(dense<float>(4, 3, rng), crew_settings{.clusters = 2}).layer;
  write(dir / "valid_compressed_mlp.safetensors", network_bytes(compressed_mlp));

  conv2d<float> c1(shape{4, 5, 5}, {.out_channels = 4, .kernel = 3, .padding = 1}, rng);
  conv2d<float> c2(c1.output_shape(), {.out_channels = 4, .kernel = 3, .padding = 1}, rng);
  conv2d<float> c3(c2.output_shape(), {.out_channels = 2, .kernel = 3, .stride = 2}, rng);
  network<float> compressed_cnn;
  compressed_cnn << compress(c1, block_circulant_settings{2}).layer << compress(c2, smartdeal_settings{.basis_width = 3, .segment_density = 0.5}).layer
                 << compress(c3, kdconv_settings{.bases = 2, .density = 0.5}).layer;
  write(dir / "valid_compressed_cnn.safetensors", network_bytes(compressed_cnn));

  safetensors_writer dtypes;
  dtypes.put_array("f32", {2}, std::vector<float>{1.5f, -2});
  dtypes.put_array("f64", {1}, std::vector<double>{0.1});
  dtypes.put_array("f16", {2}, std::vector<float>{1, -0.5f}, dtype::f16);
  dtypes.put_array("bf16", {1, 2}, std::vector<float>{3, 4}, dtype::bf16);
  dtypes.put_array("i8", {2}, std::vector<std::int8_t>{-3, 4});
  dtypes.put_array("u8", {3}, std::vector<std::uint8_t>{1, 2, 255});
  dtypes.put_array("i32", {1}, std::vector<std::int32_t>{-70000});
  dtypes.put_setting("format", "pt");
  write(dir / "valid_dtypes.safetensors", dtypes.bytes());

  safetensors_writer linear;  // a torch.nn.Linear(3, 2) state_dict in half precision
  linear.put_array("fc.weight", {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6}, dtype::f16);
  linear.put_array("fc.bias", {2}, std::vector<float>{0.5f, -1}, dtype::f16);
  write(dir / "valid_linear_f16.safetensors", linear.bytes());

  write(dir / "invalid_truncated.safetensors", {mlp_bytes.begin(), mlp_bytes.begin() + 40});
  write(dir / "invalid_length.safetensors", hand("{}", 0, 1u << 20));
  write(dir / "invalid_overlap.safetensors",
        hand(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", 8));
  write(dir / "invalid_json.safetensors", hand(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8])", 8));
  write(dir / "invalid_kind.safetensors",
        hand(R"({"__metadata__":{"slimnn.architecture":"[{\"kind\":\"gelu\",\"settings\":{\"input\":\"4\"}}]"}})", 0));
  write(dir / "invalid_arch.safetensors",
        hand(R"({"__metadata__":{"slimnn.architecture":"[{\"kind\":\"relu\",\"settings\":{\"input\":\"3x4\"}},{\"kind\":\"flatten\"}]"}})", 0));
  return 0;
}
