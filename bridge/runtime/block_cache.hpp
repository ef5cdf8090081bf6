#pragma once
// A per-thread cache of small freed blocks, in front of malloc, for C++'s
// operator new and delete (new_delete.cpp replaces them with these).
//
// Why: a request allocates and frees about two dozen small C++ objects
// (coroutine frames, Asio operations, strings, the exchange). glibc keeps
// only 7 freed blocks of a size per thread (its tcache), so with many
// connections in flight most of them went through its arena code instead.
// With this cache a proxied request takes 24.8k instructions instead of
// 30.1k (callgrind, docs/benchmarks.md).
// Python's own allocations do not come through here (they use malloc and
// pymalloc), so an app's memory behaves as before.
//
// The rules:
// - Blocks of up to max_size bytes are kept in 16-byte size classes, in
//   singly linked lists, per thread, up to max_cached bytes per thread; the
//   rest goes back to free().
// - A block freed on another thread than the one that allocated it is kept
//   by the freeing thread: every block comes from malloc, so any thread may
//   hand it back to free() later.
// - A thread's blocks go back to free() when the thread exits; after that,
//   its frees go straight to free().
// - A block's class is the largest 16-byte multiple its usable size
//   (malloc_usable_size) covers, so a block in class c holds at least 16c
//   bytes, and a request for n bytes takes from class ceil(n / 16).
//
// Not built under the sanitizers, which replace operator new themselves.
#include <cstddef>

namespace trestle::runtime::block_cache {

inline constexpr std::size_t granule = 16;
inline constexpr std::size_t max_size = 4096;
inline constexpr std::size_t max_cached = 128 * 1024;

// Memory for n bytes, aligned for any fundamental type; nullptr only when
// malloc fails.
void* allocate(std::size_t n) noexcept;
// p came from allocate(n), or allocate() of any size when n is unknown.
void release(void* p, std::size_t n) noexcept;
void release(void* p) noexcept;

// Whether this build's operator new and delete go through the cache (not
// under the sanitizers, nor with -DTRESTLE_BLOCK_CACHE=OFF).
bool replaces_operator_new() noexcept;

// For tests: the bytes this thread holds, and handing them all back.
std::size_t cached_bytes() noexcept;
void flush() noexcept;

} // namespace trestle::runtime::block_cache
