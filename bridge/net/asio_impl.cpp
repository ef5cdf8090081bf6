// The one translation unit that compiles Asio's and Beast's implementation.
// Every other file sees only declarations (BOOST_*_SEPARATE_COMPILATION),
// which keeps incremental builds fast on two cores.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
