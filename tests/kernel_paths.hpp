// Test helper: runs a check once on every kernel path this CPU supports (kernels/isa.hpp),
// with that path forced and named in the failure messages.
#pragma once

#include <gtest/gtest.h>

#include "slimnn/kernels/isa.hpp"

namespace slimnn::testing {

template <class F>
void for_each_isa(F&& check) {
  for (const isa path : supported_isas()) {
    SCOPED_TRACE(std::string("kernel path ") + isa_name(path));
    const scoped_isa use(path);
    check(path);
  }
}

}  // namespace slimnn::testing
