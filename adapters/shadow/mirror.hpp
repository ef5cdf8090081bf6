#pragma once
// Shadow mode's state for one mount: which requests are replayed, the
// replays in flight (bounded), and the judge, a thread that compares each
// pair of answers and keeps the tallies, per route, that the metrics and
// the dashboard read.
//
// The path of one shadowed request (shadow_handler.hpp):
//   io thread: wants() and take_slot() decide, the primary gets a tee_port;
//   the primary's thread: the tee copies the body it reads and the bytes it
//     writes, passes everything on, and at finish hands the copies to
//     replay(), after the client has its answer;
//   io thread: the shadow handler gets a replay_port (an exchange in memory);
//   the shadow's thread: its answer is captured, then handed to the judge;
//   the judge: identical bytes are a match at once; else Python
//     (trestle._shadow.judge) compares as JSON, with the ignored paths and
//     the normalizer, and writes the readable diff.
// Nothing on that path waits for the shadow: when every slot is taken, or
// the judge is behind, the request is not replayed and the drop is counted.
#include "adapters/shadow/capture.hpp"
#include "bridge/config/options.hpp"
#include "bridge/net/request.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace trestle { class handler; }
namespace trestle::net { class app_port; }
namespace trestle::py { class ref; class thread_state; }

namespace trestle::shadow {

class replay_port;
class slot;

// Latencies in buckets 2^(1/8) apart (about 9%), from 10 us to about 100 s.
class latency_histogram {
public:
    static constexpr std::size_t buckets = 186;
    void add(double seconds);
    // The upper bound of the bucket the q-quantile falls in; 0 when empty.
    double quantile(double q) const;
    std::uint64_t count() const { return count_; }

private:
    std::array<std::uint32_t, buckets> n_{};
    std::uint64_t count_ = 0;
};

// Why a request was not replayed (or its replay not judged).
enum class drop { queue_full, body_too_large, judge_behind, refused, primary_failed };
inline constexpr std::size_t drop_kinds = 5;

// One replayed request and both answers, for the judge.
struct trial {
    net::request_head head;
    captured_response primary, shadow;
    double primary_seconds = 0, shadow_seconds = 0;
    bool timed_out = false;   // the shadow ran past shadow_timeout
};

class mirror : public std::enable_shared_from_this<mirror> {
public:
    // Requires the GIL: the comparison settings (ignored paths, the
    // normalizer) are checked now; a bad one throws mount_error (exit 2).
    // A proxy shadow (shadow = "proxy:URL", or shadow_process) has its
    // replays' io on a thread of the mirror's own at idle priority
    // (SCHED_IDLE), which never delays the primary's io threads.
    mirror(const mount_spec& primary, handler& shadow, std::string shadow_name);
    ~mirror();
    mirror(const mirror&) = delete;
    mirror& operator=(const mirror&) = delete;

    const shadow_options& settings() const { return opt_; }

    // ---- io thread, once per request ------------------------------------------
    // The request is one to replay (method, route, no upgrade, body size),
    // sampling aside.
    bool wants(const net::request_head& h) const;
    // Sampling, then a slot: false when this request is not replayed.
    bool take_slot();
    void give_slot() { slots_.fetch_sub(1, std::memory_order_acq_rel); }
    void dropped(drop why) { drops_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed); }

    // ---- any thread: the primary has answered -----------------------------------
    // Replays the request on `io` (the primary's io thread). Holds the slot
    // taken for it until the replay's port is gone.
    void replay(slot s, net::request_head head, net::endpoint_info ep, std::string body, captured_response primary,
                double primary_seconds, const boost::asio::any_io_executor& io);

    // ---- the replay's thread ------------------------------------------------------
    void judge(std::unique_ptr<trial> t);
    // The replay's app has answered (or was cut, or refused): the next
    // waiting replay may start.
    void replay_finished();

    // Starts the judge thread. Before the first request.
    void start();
    // Ends the judge thread, then a proxy shadow's replay io thread (its
    // calls in flight are abandoned), after the pool and the loop have
    // stopped. Without the GIL (the judge drops its Python references with it).
    void stop();

    // This mount's samples of one trestle_shadow_* family, appended to `out`.
    void render(std::string& out, const char* family) const;
    // This mount's part of the dashboard's shadow document, and its kept
    // mismatches (each a JSON object) appended to `mismatches`.
    std::string json(std::vector<std::pair<double, std::string>>& mismatches) const;

    // The route a request is counted under: "GET /orders/:id".
    std::string route_of(const net::request_head& h) const;

    // A shadow in a process of its own: how many times it was started
    // again (trestle_shadow_process_restarts_total). Before start().
    void count_restarts(std::function<unsigned()> restarts) { restarts_ = std::move(restarts); }

private:
    struct route_stats {
        std::uint64_t matched = 0, mismatched = 0, errors = 0;
        latency_histogram primary, shadow;
        std::vector<std::pair<double, std::string>> kept;   // (time, JSON)
    };
    struct running {
        std::weak_ptr<replay_port> port;
        std::chrono::steady_clock::time_point deadline;
    };

    struct replay_io;   // the proxy shadow's io thread (mirror.cpp)

    void launch(std::shared_ptr<replay_port> port);
    void judge_loop();
    void settle(trial& t, py::thread_state& ts);
    void record(const std::string& route, const trial& t, int verdict, std::string entry);

    shadow_options opt_;
    std::string prefix_, shadow_name_;
    handler& shadow_;
    std::unique_ptr<py::ref> settings_;   // trestle._shadow.Settings; dropped by the judge thread
    std::unique_ptr<py::ref> judge_fn_;

    std::atomic<std::size_t> slots_{0};
    std::array<std::atomic<std::uint64_t>, drop_kinds> drops_{};
    std::atomic<std::uint64_t> replayed_{0};

    // Replays running (at most shadow_concurrency) and those waiting for a turn.
    std::unique_ptr<replay_io> replay_io_;
    std::mutex lm_;
    std::size_t active_ = 0;
    std::deque<std::shared_ptr<replay_port>> waiting_;

    // The judge's queue and the replays it watches for their deadline.
    std::mutex qm_;
    std::condition_variable qcv_;
    std::deque<std::unique_ptr<trial>> queue_;
    std::vector<running> running_;
    bool stopping_ = false;
    std::thread thread_;

    mutable std::mutex book_m_;
    std::map<std::string, route_stats> routes_;
    std::FILE* log_ = nullptr;
    std::function<unsigned()> restarts_;
};

// Every shadowed mount of the process, as the metrics and the dashboard
// read them.
class board {
public:
    void add(mirror* m) { mirrors_.push_back(m); }
    bool empty() const { return mirrors_.empty(); }
    // The trestle_shadow_* families (Prometheus text), appended to `out`.
    void render(std::string& out) const;
    // {"mounts": [...], "mismatches": [...]}: docs/configuration.md, "Shadow mode".
    std::string json() const;

private:
    std::vector<mirror*> mirrors_;
};

} // namespace trestle::shadow
