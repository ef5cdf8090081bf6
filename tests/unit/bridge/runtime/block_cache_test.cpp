// The per-thread block cache behind operator new: which blocks it keeps and
// hands back, that it stays within its bound, that another thread's frees
// stay with that thread, and that an exiting thread gives its blocks back.
#include "bridge/runtime/block_cache.hpp"

#include <gtest/gtest.h>

#include <malloc.h>
#include <thread>
#include <vector>

namespace trestle::runtime::block_cache {
namespace {

struct block_cache_test : ::testing::Test {
    void SetUp() override { flush(); }
    void TearDown() override { flush(); }
};

TEST_F(block_cache_test, a_freed_block_serves_the_next_request_of_its_class) {
    void* p = allocate(40);   // class 3: 33 to 48 bytes
    ASSERT_NE(p, nullptr);
    release(p, 40);
    EXPECT_EQ(cached_bytes(), 48u);
    void* other = allocate(49);   // class 4 is empty
    EXPECT_NE(other, p);
    void* q = allocate(33);
    EXPECT_EQ(q, p);
    EXPECT_EQ(cached_bytes(), 0u);
    release(q, 33);
    release(other, 49);
}

TEST_F(block_cache_test, a_block_freed_without_its_size_is_kept_by_what_it_holds) {
    void* p = allocate(100);   // asked as 112 bytes
    release(p);
    ASSERT_GT(cached_bytes(), 0u);
    // Whatever its usable size, the block holds at least its class's bytes.
    void* q = allocate(cached_bytes());
    EXPECT_EQ(q, p);
    EXPECT_GE(malloc_usable_size(q), 100u);
    release(q);
}

TEST_F(block_cache_test, blocks_past_the_largest_class_go_back_to_malloc) {
    void* p = allocate(max_size + 1);
    release(p, max_size + 1);
    EXPECT_EQ(cached_bytes(), 0u);
    void* q = allocate(max_size * 4);
    release(q);   // its usable size is past the largest class too
    EXPECT_EQ(cached_bytes(), 0u);
}

TEST_F(block_cache_test, a_thread_keeps_at_most_its_bound) {
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < 2 * max_cached / 512; ++i) blocks.push_back(allocate(512));
    for (void* p : blocks) release(p, 512);
    EXPECT_LE(cached_bytes(), max_cached);
    EXPECT_GT(cached_bytes(), max_cached - 512);
}

TEST_F(block_cache_test, a_block_freed_on_another_thread_stays_with_that_thread) {
    void* p = allocate(64);
    std::size_t there = 0;
    std::thread t([&] {
        release(p, 64);
        there = cached_bytes();
        EXPECT_EQ(allocate(64), p);   // and serves that thread's next request
        release(p, 64);
    });
    t.join();
    EXPECT_EQ(there, 64u);
    EXPECT_EQ(cached_bytes(), 0u);
}

TEST_F(block_cache_test, an_exiting_thread_hands_its_blocks_back_to_malloc) {
    if (mallinfo2().uordblks == 0) GTEST_SKIP() << "malloc keeps no statistics here (a sanitizer's allocator)";
    std::size_t in_use_before_exit = 0;
    std::size_t kept = 0;
    std::thread t([&] {
        std::vector<void*> blocks;
        for (int i = 0; i < 100; ++i) blocks.push_back(allocate(1000));
        for (void* p : blocks) release(p, 1000);
        kept = cached_bytes();
        in_use_before_exit = mallinfo2().uordblks;
    });
    t.join();
    ASSERT_GE(kept, 90'000u);
    std::size_t in_use_after = mallinfo2().uordblks;
    EXPECT_GE(in_use_before_exit - in_use_after, kept);
}

TEST_F(block_cache_test, operator_new_and_delete_go_through_it) {
    if (!replaces_operator_new()) GTEST_SKIP() << "this build keeps the default operator new (sanitizers)";
    // Called as functions: a new-expression's allocation may be elided.
    void* p = ::operator new(40);
    ::operator delete(p);
    EXPECT_GT(cached_bytes(), 0u);
    void* q = ::operator new(40);
    EXPECT_EQ(q, p);
    ::operator delete(q, 40);
    EXPECT_GT(cached_bytes(), 0u);
}

} // namespace
} // namespace trestle::runtime::block_cache
