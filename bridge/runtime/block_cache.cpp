#include "bridge/runtime/block_cache.hpp"

#include <cstdlib>
#include <malloc.h>
#include <new>

namespace trestle::runtime::block_cache {

namespace {

constexpr std::size_t classes = max_size / granule + 1;   // class 0 unused

struct block {
    block* next;
};

struct state {
    block* head[classes];
    std::size_t bytes;
    bool registered;   // this thread's closer exists, so its blocks are freed at exit
    bool closed;       // the thread is exiting: frees go straight to free()
};

// Constant-initialised and trivially destructible: reaching it costs one
// access relative to the thread pointer, with no guard.
thread_local state tls{};

void drain(state& s) noexcept {
    for (auto& h : s.head) {
        while (h) {
            block* b = h;
            h = b->next;
            std::free(b);
        }
    }
    s.bytes = 0;
}

// Its destructor hands the thread's blocks back when the thread exits. It
// is a separate object so that the hot paths never touch a guarded
// thread_local; it is made on the first block a thread keeps.
struct closer {
    bool made = false;
    ~closer() {
        drain(tls);
        tls.closed = true;
    }
};
thread_local closer at_exit;

inline std::size_t class_for(std::size_t n) noexcept { return (n + granule - 1) / granule; }

inline void keep(void* p, std::size_t c) noexcept {
    state& s = tls;
    std::size_t size = c * granule;
    if (c >= classes || s.closed || s.bytes + size > max_cached) {
        std::free(p);
        return;
    }
    if (!s.registered) [[unlikely]] {
        s.registered = true;
        at_exit.made = true;   // first use constructs it and registers its destructor
    }
    auto* b = static_cast<block*>(p);
    b->next = s.head[c];
    s.head[c] = b;
    s.bytes += size;
}

} // namespace

void* allocate(std::size_t n) noexcept {
    std::size_t c = class_for(n ? n : 1);
    if (c >= classes) return std::malloc(n);
    state& s = tls;
    if (block* b = s.head[c]) {
        s.head[c] = b->next;
        s.bytes -= c * granule;
        return b;
    }
    return std::malloc(c * granule);
}

void release(void* p, std::size_t n) noexcept {
    if (!p) return;
    keep(p, class_for(n ? n : 1));
}

void release(void* p) noexcept {
    if (!p) return;
    // A block holds at least its usable size, so the class that size covers
    // fully is a safe home for it whatever size it was asked for.
    keep(p, malloc_usable_size(p) / granule);
}

bool replaces_operator_new() noexcept {
#if TRESTLE_BLOCK_CACHE
    return true;
#else
    return false;
#endif
}

std::size_t cached_bytes() noexcept { return tls.bytes; }

void flush() noexcept { drain(tls); }

} // namespace trestle::runtime::block_cache

#if TRESTLE_BLOCK_CACHE
// The replaceable allocation functions ([new.delete]): every plain new and
// delete in the process, libstdc++'s and Asio's included, goes through the
// cache. The aligned forms keep their defaults (aligned_alloc and free).
namespace bc = trestle::runtime::block_cache;

void* operator new(std::size_t n) {
    for (;;) {
        if (void* p = bc::allocate(n)) return p;
        std::new_handler h = std::get_new_handler();
        if (!h) throw std::bad_alloc();
        h();
    }
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return ::operator new(n);
    } catch (...) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return ::operator new(n, std::nothrow); }
void operator delete(void* p) noexcept { bc::release(p); }
void operator delete[](void* p) noexcept { bc::release(p); }
void operator delete(void* p, std::size_t n) noexcept { bc::release(p, n); }
void operator delete[](void* p, std::size_t) noexcept { bc::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { bc::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { bc::release(p); }
#endif
