#pragma once
// A file region on its way from an app side to the connection, which sends
// it with sendfile(2) (see app_port::send_file and io_work::file).
#include "bridge/net/unique_fd.hpp"

#include <cstdint>

namespace trestle::net {

// The job owns the descriptor wherever it is (the exchange's queue, io_work,
// a pump that returns early), so whoever drops the job closes it.
struct file_job {
    unique_fd fd;
    std::uint64_t offset = 0;
    std::uint64_t count = 0;
};

} // namespace trestle::net
