# Writes OUT, a C++ source defining NAMESPACE::FUNCTION() -> std::string_view
# over the bytes of IN, at build time (see CMakeLists.txt):
#   cmake -DIN=page.html -DOUT=page.cpp -DNAMESPACE=ns -DFUNCTION=page -DHEADER=x.hpp -P embed.cmake
# A byte array rather than a raw string literal: any content is correct
# (no delimiter can clash) and compilers take large arrays quickly.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR size "${digits} / 2")
string(REPEAT "[0-9a-f]" 32 row)   # 16 bytes a line
string(REGEX REPLACE "(${row})" "\\1\n" hex "${hex}")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}.tmp"
"// Generated from ${IN} by embed.cmake: do not edit.
#include \"${HEADER}\"

namespace ${NAMESPACE} {
namespace {
const unsigned char bytes[] = {
${bytes}0};
} // namespace

std::string_view ${FUNCTION}() { return {reinterpret_cast<const char*>(bytes), ${size}}; }

} // namespace ${NAMESPACE}
")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
