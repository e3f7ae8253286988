// slimnn/core/parallel.hpp — inference on several threads: a batch cut into blocks of
// columns, or one layer's outputs cut into ranges.
//
//   thread_pool pool(2);
//   parallel_forward(layer, pool, x, y);     // any Layer; network<T> does the same itself
// Blocks: a batch of B samples is cut into batch_blocks(B) = min(16, B / 32) blocks of
// consecutive columns (at least 32 each, cut at multiples of 8), a partition that depends
// on B alone. Each block runs through the layer (or the whole chain of a network) as one
// task, and its result goes into its columns of y; with fewer threads than blocks a
// thread runs several, with no pool the calling thread runs them all.
// Ranges: a batch of one block (B < 64) runs on the calling thread inside a
// parallel_scope. While one is alive, a layer whose work is large enough cuts its outputs
// into ranges, one per thread, with detail::split_range (dense and CREW at batch 1 do),
// and computes every output as it does in the whole layer.
// So the result is bit-identical for any thread count (the tests check it for every
// layer kind). A layer called directly, not through parallel_forward, computes a batch as
// a whole, which agrees with the blocks to rounding.
// Nesting: work started from inside a task of any pool (a network inside a network, a
// forward inside the trainer's evaluation) runs inline on that task's thread.
// Thread safety: a parallel_scope belongs to the thread that made it. Eigen's own GEMM
// threads (set_threads, OpenMP builds only) are separate; leave them at 1 while running
// on a pool, or each task's GEMMs start more threads.
//
// Component: slimnn::core (Eigen only).
#pragma once

#include <algorithm>
#include <memory>
#include <utility>

#include "slimnn/core/layer.hpp"
#include "slimnn/core/thread_pool.hpp"
#include "slimnn/core/types.hpp"

namespace slimnn {

/// The smallest block of a batch that runs as one task.
inline constexpr index_t min_block_columns = 32;
/// The most blocks a batch is cut into.
inline constexpr index_t max_batch_blocks = 16;
/// Blocks start at multiples of this many columns.
inline constexpr index_t batch_column_alignment = 8;

/// The number of blocks a batch of `batch` samples is cut into (1: not cut).
inline index_t batch_blocks(index_t batch) { return std::clamp<index_t>(batch / min_block_columns, 1, max_batch_blocks); }

namespace detail {
/// The pool lent to layer calls on this thread (null: none).
inline thread_pool*& lent_pool() {
  thread_local thread_pool* pool = nullptr;
  return pool;
}
}  // namespace detail

/// While alive, layer calls made on this thread may cut their work over `pool`.
class parallel_scope {
 public:
  explicit parallel_scope(thread_pool& pool) : saved_(std::exchange(detail::lent_pool(), &pool)) {}
  ~parallel_scope() { detail::lent_pool() = saved_; }
  parallel_scope(const parallel_scope&) = delete;
  parallel_scope& operator=(const parallel_scope&) = delete;

 private:
  thread_pool* saved_;
};

namespace detail {

/// Part p of `parts` near-equal parts of [0, count), cut at multiples of `align`:
/// [first, last) as a pair.
inline std::pair<index_t, index_t> part_of(index_t p, index_t parts, index_t count, index_t align) {
  const index_t units = (count + align - 1) / align;
  return {units * p / parts * align, std::min(count, units * (p + 1) / parts * align)};
}

/// Runs task(begin, end) over disjoint ranges that cover [0, count): one range per
/// thread of the lent pool, cut at multiples of `align`, each at least `min_part` long.
/// Without a lent pool, inside a task, or when count < 2 * min_part: task(0, count) inline.
template <class Task>
void split_range(index_t count, index_t align, index_t min_part, Task&& task) {
  thread_pool* pool = lent_pool();
  index_t parts = pool && !thread_pool::inside_task() ? std::min<index_t>(pool->size(), count / min_part) : 1;
  const index_t units = (count + align - 1) / align;
  parts = std::min(parts, units);
  if (parts <= 1) return task(index_t(0), count);
  pool->run(parts, [&](index_t p) {
    const auto [begin, end] = part_of(p, parts, count, align);
    task(begin, end);
  });
}

/// The largest block of a batch of `batch` (the columns one task runs at most).
inline index_t largest_batch_block(index_t batch) {
  const index_t blocks = batch_blocks(batch);
  index_t largest = 0;
  for (index_t p = 0; p < blocks; ++p) {
    const auto [first, last] = part_of(p, blocks, batch, batch_column_alignment);
    largest = std::max(largest, last - first);
  }
  return largest;
}

/// y (x.cols() columns, sized by the caller) = forward(x) in batch_blocks, on `pool` when
/// given and not called from inside a task, else on the calling thread; a batch of one
/// block runs inside a parallel_scope of the pool. forward(x_block, y_block) is a const
/// layer or chain forward into a view: each block writes straight into its columns of y.
template <class T, class Forward>
void forward_on(thread_pool* pool, const_matrix_ref<T> x, matrix_view<T> y, Forward&& forward) {
  if (pool && thread_pool::inside_task()) pool = nullptr;
  const index_t batch = x.cols(), blocks = batch_blocks(batch);
  if (blocks == 1) {
    if (!pool) return forward(x, y);
    parallel_scope scope(*pool);
    return forward(x, y);
  }
  const auto run_block = [&](index_t p) {
    const auto [first, last] = part_of(p, blocks, batch, batch_column_alignment);
    forward(x.middleCols(first, last - first), y.middleCols(first, last - first));
  };
  if (pool) pool->run(blocks, run_block);
  else
    for (index_t p = 0; p < blocks; ++p) run_block(p);
}

/// The inference threads of a chain of layers (network, sequential): a pool shared by
/// the chain's copies, or none (1 thread).
class inference_threads {
 public:
  void set(const char* who, int threads) {
    require<config_error>(threads >= 1 && threads <= 1024, who, ": threads must be in [1, 1024], got ", threads);
    pool_ = threads == 1 ? nullptr : std::make_shared<thread_pool>(threads);
  }
  int count() const { return pool_ ? pool_->size() : 1; }
  thread_pool* pool() const { return pool_.get(); }

 private:
  std::shared_ptr<thread_pool> pool_;
};

}  // namespace detail

/// y = layer.forward(x) on the threads of `pool` (see the header comment), into a view
/// sized output size x x.cols() (shape_error otherwise).
template <Layer L>
void parallel_forward(const L& layer, thread_pool& pool, const_matrix_ref<typename L::scalar_type> x,
                      matrix_view<typename L::scalar_type> y) {
  using T = typename L::scalar_type;
  detail::check_input_rows(layer, x.rows());
  detail::check_output(layer, y, x.cols());
  detail::forward_on<T>(&pool, x, y, [&](const_matrix_ref<T> xb, matrix_view<T> yb) { layer.forward(xb, yb); });
}
/// As above, resizing y first.
template <Layer L>
void parallel_forward(const L& layer, thread_pool& pool, const_matrix_ref<typename L::scalar_type> x,
                      matrix<typename L::scalar_type>& y) {
  y.resize(layer.output_shape().size(), x.cols());
  parallel_forward(layer, pool, x, matrix_view<typename L::scalar_type>(y));
}

}  // namespace slimnn
