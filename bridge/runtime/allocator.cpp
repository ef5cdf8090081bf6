#include "bridge/runtime/allocator.hpp"

#ifdef TRESTLE_MIMALLOC
#include <mimalloc.h>
#endif

namespace trestle::runtime {

std::string allocator_name() {
#ifdef TRESTLE_MIMALLOC
    int v = mi_version();   // 209 for 2.0.9
    return "mimalloc " + std::to_string(v / 100) + "." + std::to_string(v / 10 % 10) + "." + std::to_string(v % 10);
#else
    return "glibc malloc";
#endif
}

bool allocated_by_mimalloc(const void* p) {
#ifdef TRESTLE_MIMALLOC
    return mi_is_in_heap_region(p);
#else
    (void)p;
    return false;
#endif
}

} // namespace trestle::runtime
