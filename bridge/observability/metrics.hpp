#pragma once
// Metrics in the Prometheus text format (--metrics-path).
//
// The hot path costs a per-thread add: every thread that records gets cells
// of its own, written only by that thread (a relaxed load and store, no
// read-modify-write, so no cache line bounces between cores), and a scrape
// sums them. A thread that exits folds its cells into the registry's
// retired totals, so nothing it counted is lost and threads that come and go
// (the pool grows and shrinks) do not pile up cells.
//
// Mounts are numbered before serving (add_mount); a route carries its
// mount's number to the connection, which records the request when it ends.
// Gauges read at scrape time (the pool's size and queue, open connections)
// are callbacks registered before serving.
#include <array>
#include <optional>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

namespace trestle::metrics {

class shared_table;

// Seconds: the request latency histogram's upper bounds (+Inf follows).
inline constexpr std::array<double, 14> latency_bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};

// A counter with one writer (the thread that owns it).
struct cell {
    std::atomic<std::uint64_t> v{0};
    void add(std::uint64_t n) { v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
    std::uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

struct mount_cells {
    cell started, finished;
    cell shed;                               // 503 from the server: the handler was full
    std::array<cell, 5> by_class;            // 1xx .. 5xx
    std::array<cell, latency_bounds.size() + 1> buckets;   // not cumulative; the last is +Inf
    cell latency_ns;
    cell bytes_in, bytes_out;
};

// One route's traffic (trestle_route_*): a thread's share, or the sum.
struct route_counts {
    std::uint64_t requests = 0, errors = 0, latency_ns = 0;   // errors: 5xx
};
// Routes each thread keeps apart; more are counted as "OTHER" (per mount,
// route_name caps what a route can be called, this the map's size).
inline constexpr std::size_t max_routes = 500;

// What a client connection speaks now (trestle_connections{protocol}).
enum class conn_protocol : std::uint8_t { http1, h2, websocket, tunnel };
inline constexpr std::size_t conn_protocols = 4;
// What ran out (trestle_timeouts_total{kind}).
enum class timeout_kind : std::uint8_t { handshake, header, keepalive, body, write, request, websocket };
inline constexpr std::size_t timeout_kinds = 7;

struct thread_cells {
    explicit thread_cells(std::size_t mounts) : mounts(mounts) {}
    std::vector<mount_cells> mounts;
    cell gil_wait_ns, gil_waits;       // a pool thread taking the GIL back
    cell queue_wait_ns, queue_waits;   // a job waiting in the pool's queue
    cell ws_opened, ws_closed;         // WebSocket sessions (io threads)
    // Levels, not counts: +1 and -1 (modulo 2^64) as connections change,
    // maybe on different threads; the sum over threads is the level.
    std::array<cell, conn_protocols> conns;
    cell idle_conns;                   // HTTP/1.1 connections between requests
    std::array<cell, timeout_kinds> timeouts;
    // Per route: keyed by the mount's row (two bytes) and the route's name.
    // Written by this thread, read by a scrape: the lock is never contended
    // but by a scrape.
    std::mutex routes_m;
    std::unordered_map<std::string, route_counts> routes;
};

class registry {
public:
    registry();
    ~registry();
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;

    // ---- before serving -----------------------------------------------
    // The mount's number. `iface`: wsgi, asgi, static, proxy. Number 0 is
    // the requests no mount took (404 at a table without a root app, 400
    // for a path no mount may see).
    std::uint16_t add_mount(std::string prefix, std::string iface);
    // A value read at each scrape, on the scraping thread. `type`: gauge or
    // counter. `labels`: as rendered inside the braces (may be empty).
    void add_value(std::string name, std::string help, std::string type, std::string labels,
                   std::function<double()> read);
    // Whole families of this process's own, appended at each scrape
    // (shadow mode's, per route); with workers, the answering worker's.
    void add_series(std::function<void(std::string&)> render);

    // ---- any thread -----------------------------------------------------
    // This thread's cells (made on first use).
    thread_cells& local();
    void request_started(std::uint16_t mount) { local().mounts[mount].started.add(1); }
    // `started` false: the request was answered before it reached an app
    // (it was never counted in flight).
    void request_finished(std::uint16_t mount, unsigned status, std::uint64_t ns, std::uint64_t bytes_in,
                          std::uint64_t bytes_out, bool started = true);
    void request_shed(std::uint16_t mount) { local().mounts[mount].shed.add(1); }
    // A request started under `from` turned out to be `to`'s (a Flask async
    // view): `from` counts one start less. The cells sum modulo 2^64, so the
    // total is right whichever thread's cell holds the +1 and the -1.
    void request_moved(std::uint16_t from, std::uint16_t to) {
        thread_cells& c = local();
        c.mounts[from].started.add(~std::uint64_t{0});
        c.mounts[to].started.add(1);
    }
    void websocket_opened() { local().ws_opened.add(1); }
    // A connection began (`from` empty), changed protocol, or ended (`to` empty).
    void connection_moved(std::optional<conn_protocol> from, std::optional<conn_protocol> to) {
        thread_cells& c = local();
        if (from) c.conns[static_cast<std::size_t>(*from)].add(~std::uint64_t{0});
        if (to) c.conns[static_cast<std::size_t>(*to)].add(1);
    }
    void connection_idle(bool idle) { local().idle_conns.add(idle ? 1 : ~std::uint64_t{0}); }
    void timed_out(timeout_kind k) { local().timeouts[static_cast<std::size_t>(k)].add(1); }
    // A request at the mount's row `mount`, its route named from its
    // method and path (router::route_name). No allocation once warm.
    void route_finished(std::uint16_t mount, std::string_view method, std::string_view prefix, std::string_view rest,
                        unsigned status, std::uint64_t ns);
    void websocket_closed() { local().ws_closed.add(1); }

    // The text format (version 0.0.4).
    std::string render();

    // ---- with worker processes -------------------------------------------
    // The counters a registry of `mounts` mounts publishes.
    static std::size_t counters_for(std::size_t mounts);
    // Which of those counters are levels (shared_table::set_levels).
    static std::vector<std::size_t> level_fields(std::size_t mounts);
    // After the mounts are added: publishes this worker's totals into its
    // slot of the supervisor's table four times a second (and before each
    // render, which then answers for every worker). False (nothing shared)
    // if the table does not fit this registry.
    bool share(shared_table* table, int slot);
    // Stops publishing, after a last publish (while what the values read
    // is still alive).
    void stop_sharing();

    // Folds and frees a thread's cells (at its exit).
    void retire(thread_cells* c);

private:
    struct mount_info {
        std::string prefix, iface;
    };
    struct value {
        std::string name, help, type, labels;
        std::function<double()> read;
    };
    static constexpr std::size_t thread_fields = 6 + conn_protocols + 1 + timeout_kinds;
    void sum_into(std::vector<std::uint64_t>& mounts, std::array<std::uint64_t, thread_fields>& threads,
                  const thread_cells& c) const;
    // Every counter of this process, flattened: each mount's, then the threads'.
    std::vector<std::uint64_t> collect();
    std::vector<double> read_values();
    void publish();

    const std::uint64_t id_;
    std::mutex m_;
    std::vector<mount_info> mounts_;
    std::vector<value> values_;
    std::function<void(std::string&)> more_;
    std::vector<thread_cells*> live_;
    // What exited threads counted, flattened as sum_into lays it out.
    std::vector<std::uint64_t> retired_mounts_;
    std::array<std::uint64_t, thread_fields> retired_threads_{};
    std::unordered_map<std::string, route_counts> retired_routes_;
    // Every thread's routes and the retired ones, summed (under m_).
    std::unordered_map<std::string, route_counts> routes_locked();

    shared_table* shared_ = nullptr;
    int slot_ = -1;
    std::thread publisher_;
    std::mutex publish_m_;
    std::condition_variable publish_cv_;
    bool publish_stop_ = false;
};

// The process's registry while metrics are on, else null. Set before
// serving; the hot path tests it.
registry* current();
void set_current(registry* r);

// Escapes a label value for the text format.
std::string label_value(std::string_view v);

} // namespace trestle::metrics
