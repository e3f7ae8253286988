#include "slimnn/detail/bitpack.hpp"

#include <gmock/gmock.h>

#include <random>

namespace {

using slimnn::detail::bits_for;
using slimnn::detail::packed_bits;

TEST(bitpack, bits_for_counts_distinct_values) {
  EXPECT_EQ(bits_for(0), 0);
  EXPECT_EQ(bits_for(1), 0);
  EXPECT_EQ(bits_for(2), 1);
  EXPECT_EQ(bits_for(3), 2);
  EXPECT_EQ(bits_for(16), 4);
  EXPECT_EQ(bits_for(17), 5);
  EXPECT_EQ(bits_for(1ull << 32), 32);
}

TEST(bitpack, every_width_round_trips_across_word_boundaries) {
  std::mt19937_64 rng(1);
  for (int width = 0; width <= 32; ++width) {
    const std::size_t count = 203;  // not a multiple of anything
    packed_bits packed(count, width);
    std::vector<std::uint32_t> values(count);
    const std::uint64_t limit = width == 0 ? 1 : (std::uint64_t(1) << width);
    for (auto& v : values) v = std::uint32_t(rng() % limit);
    for (std::size_t i = 0; i < count; ++i) packed.set(i, values[i]);
    for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(packed.get(i), values[i]) << "width " << width << " at " << i;
    // overwrite in reverse order: neighbours must not be disturbed
    for (std::size_t i = count; i-- > 0;) packed.set(i, values[count - 1 - i]);
    for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(packed.get(i), values[count - 1 - i]) << "width " << width;
    EXPECT_EQ(packed.bytes(), (count * std::size_t(width) + 63) / 64 * 8);
  }
}

TEST(bitpack, rejects_values_that_do_not_fit) {
  packed_bits packed(4, 3);
  EXPECT_THAT([&] { packed.set(0, 8); }, ::testing::ThrowsMessage<slimnn::config_error>(::testing::StrEq(
                                             "slimnn: packed_bits: value 8 does not fit in 3 bits")));
  EXPECT_THROW(packed.set(4, 0), slimnn::config_error);
  EXPECT_THROW(packed_bits(1, 33), slimnn::config_error);
}

}  // namespace
