#pragma once
// The handler behind --health-path, for load balancers and Kubernetes:
//   PATH/live   200 while the process answers at all (liveness);
//   PATH/ready  200 while it serves: its apps are loaded and their lifespan
//               startup succeeded (it listens only after both), and no
//               graceful stop has begun; 503 from the moment one has
//               (readiness). PATH alone is the same as PATH/ready.
// Anyone may ask (it tells nothing an app does not); GET and HEAD only. It
// answers on the io thread and never touches Python, so a pool or a loop
// that is stuck does not stop a liveness probe.
#include "bridge/core/handler.hpp"

#include <atomic>
#include <string>

namespace trestle::health {

class endpoint final : public handler {
public:
    // `unready`: set once a graceful stop begins.
    endpoint(const std::atomic<bool>& unready, std::string server_header)
        : unready_(unready), server_(std::move(server_header)) {}
    duties duties_for(const net::request_head&) const override { return {}; }
    bool submit(std::shared_ptr<net::app_port> ex) override;

private:
    const std::atomic<bool>& unready_;
    std::string server_;
};

} // namespace trestle::health
