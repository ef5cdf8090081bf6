#pragma once
// The process's allocator, named for `trestle --version`.
//
// Trestle is linked with mimalloc when the build finds it (TRESTLE_MIMALLOC,
// on by default; off under the sanitizers, which bring their own): it then
// replaces malloc for the whole process, Python and its extensions
// included, as Granian does. The requests that an io thread serves allocate
// and free many small blocks across coroutine frames, exchanges and head
// buffers; with 64 connections in flight, glibc's per-thread cache (seven
// blocks per size) overflows and every request pays its slow path and heap
// consolidation. See docs/architecture.md, "Memory".
#include <string>

namespace trestle::runtime {

// "mimalloc 2.0.9" or "glibc malloc".
std::string allocator_name();

// True if `p`, from malloc, was allocated by mimalloc: the override is live.
bool allocated_by_mimalloc(const void* p);

} // namespace trestle::runtime
