// thread_pool: every index runs once, exceptions come back, misuse is refused.
#include <gmock/gmock.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "slimnn/core/thread_pool.hpp"

namespace {

using namespace slimnn;

TEST(thread_pool, runs_every_index_exactly_once_across_many_runs) {
  for (int threads : {1, 2, 3, 8}) {
    thread_pool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (index_t count : {0, 1, 2, 7, 100}) {
      std::vector<std::atomic<int>> hits(std::size_t(count) + 1);
      pool.run(count, [&](index_t i) { hits[std::size_t(i)].fetch_add(1); });
      for (index_t i = 0; i < count; ++i) EXPECT_EQ(hits[std::size_t(i)].load(), 1) << threads << " threads, index " << i;
      EXPECT_EQ(hits[std::size_t(count)].load(), 0);
    }
  }
}

TEST(thread_pool, one_thread_runs_inline_and_several_use_other_threads) {
  thread_pool inline_pool(1);
  const auto caller = std::this_thread::get_id();
  bool all_on_caller = true;
  inline_pool.run(5, [&](index_t) { all_on_caller &= std::this_thread::get_id() == caller; });
  EXPECT_TRUE(all_on_caller);

  // Two tasks that each wait for the other can only finish on two threads.
  thread_pool pool(2);
  std::atomic<int> arrived{0};
  pool.run(2, [&](index_t) {
    arrived.fetch_add(1);
    while (arrived.load() < 2) std::this_thread::yield();
  });
  EXPECT_EQ(arrived.load(), 2);
}

TEST(thread_pool, rethrows_the_lowest_failing_index_after_all_tasks_finish) {
  thread_pool pool(3);
  std::atomic<int> finished{0};
  EXPECT_THAT(
      [&] {
        pool.run(20, [&](index_t i) {
          finished.fetch_add(1);
          if (i == 13 || i == 4) throw std::runtime_error("task " + std::to_string(i));
        });
      },
      ::testing::ThrowsMessage<std::runtime_error>(::testing::StrEq("task 4")));
  EXPECT_EQ(finished.load(), 20);
  index_t sum = 0;  // the pool still works after a failure
  std::atomic<index_t> atomic_sum{0};
  pool.run(10, [&](index_t i) { atomic_sum.fetch_add(i); });
  sum = atomic_sum.load();
  EXPECT_EQ(sum, 45);
}

TEST(thread_pool, refuses_bad_sizes_and_runs_from_its_own_tasks) {
  EXPECT_THAT([] { thread_pool pool(0); }, ::testing::ThrowsMessage<config_error>(::testing::StrEq(
                                               "slimnn: thread_pool: threads must be in [1, 1024], got 0")));
  thread_pool pool(2);
  EXPECT_THAT([&] { pool.run(2, [&](index_t) { pool.run(1, [](index_t) {}); }); },
              ::testing::ThrowsMessage<config_error>(
                  ::testing::StrEq("slimnn: thread_pool: run() called from inside one of its own tasks")));
  thread_pool other(2);  // another pool may be used from a task
  std::atomic<int> inner{0};
  pool.run(2, [&](index_t) { inner.fetch_add(1); });
  other.run(1, [&](index_t) { pool.run(3, [&](index_t) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 5);
}

}  // namespace
