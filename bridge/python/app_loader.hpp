#pragma once
#include "bridge/python/ref.hpp"

#include <string>

namespace trestle::py {

// Loads "module:attr", "module:attr.sub", "module:factory()" or
// "module:factory('arg', 1)" (literal arguments), or "module" (then
// `application`, else `app`). A missing module or attribute prints one line
// and exits 2; an exception while importing prints the traceback and exits 1.
// Requires the GIL.
ref load_app(const std::string& spec);

} // namespace trestle::py
