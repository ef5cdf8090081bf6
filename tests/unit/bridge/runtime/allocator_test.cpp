#include "bridge/runtime/allocator.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>

namespace trestle::runtime {
namespace {

#ifdef TRESTLE_MIMALLOC
// Linking mimalloc is not enough: it must be the malloc every caller gets
// (the dynamic linker finds it before libc), or the build gains nothing.
TEST(allocator, malloc_and_new_come_from_mimalloc) {
    void* p = std::malloc(100);
    auto q = std::make_unique<char[]>(5000);
    EXPECT_TRUE(allocated_by_mimalloc(p));
    EXPECT_TRUE(allocated_by_mimalloc(q.get()));
    std::free(p);
    EXPECT_EQ(allocator_name().rfind("mimalloc ", 0), 0u) << allocator_name();
}
#else
TEST(allocator, is_named_as_glibc_without_mimalloc) { EXPECT_EQ(allocator_name(), "glibc malloc"); }
#endif

} // namespace
} // namespace trestle::runtime
