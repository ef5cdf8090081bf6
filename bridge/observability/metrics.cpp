#include "bridge/observability/metrics.hpp"
#include "bridge/router/route_name.hpp"

#include "bridge/observability/gil_wait.hpp"
#include "bridge/observability/metrics_shared.hpp"

#include <algorithm>
#include <charconv>
#include <map>

namespace trestle::metrics {

namespace {

std::atomic<registry*> g_current{nullptr};
std::atomic<std::uint64_t> g_next_id{1};

// The registries alive, by id (never reused, unlike an address), so that a
// thread exiting after one is gone does not touch it.
std::mutex& live_registries_mutex() {
    static std::mutex m;
    return m;
}
std::map<std::uint64_t, registry*>& live_registries() {
    static std::map<std::uint64_t, registry*> s;
    return s;
}

struct slot {
    std::uint64_t id;
    thread_cells* cells;
};

// A thread's cells, per registry, handed back when the thread exits.
struct thread_slots {
    std::vector<slot> slots;
    ~thread_slots() {
        std::lock_guard lock(live_registries_mutex());
        for (auto& s : slots)
            if (auto it = live_registries().find(s.id); it != live_registries().end()) it->second->retire(s.cells);
    }
};
thread_local thread_slots t_slots;
thread_local std::uint64_t t_last = 0;
thread_local thread_cells* t_last_cells = nullptr;

// Fields per mount when flattened: started, finished, shed, 5 classes, the
// buckets, latency, bytes in and out.
constexpr std::size_t buckets = latency_bounds.size() + 1;
constexpr std::size_t per_mount = 3 + 5 + buckets + 3;

// The shortest text that reads back as the same double.
void append_number(std::string& out, double v) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc{} ? static_cast<std::size_t>(end - buf) : 0);
}

void append_uint(std::string& out, std::uint64_t v) { out += std::to_string(v); }

void header(std::string& out, const char* name, const char* help, const char* type) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

} // namespace

registry* current() { return g_current.load(std::memory_order_acquire); }

thread_local bool t_time_gil = false;

void add_gil_wait(std::chrono::steady_clock::duration d) {
    registry* r = current();
    if (!r) return;
    thread_cells& c = r->local();
    c.gil_wait_ns.add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
    c.gil_waits.add(1);
}
void set_current(registry* r) { g_current.store(r, std::memory_order_release); }

std::string label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

registry::registry() : id_(g_next_id.fetch_add(1)) {
    mounts_.push_back({"", "none"});   // 0: requests no mount took
    std::lock_guard lock(live_registries_mutex());
    live_registries()[id_] = this;
}

registry::~registry() {
    {
        std::lock_guard lock(live_registries_mutex());
        live_registries().erase(id_);
    }
    if (current() == this) set_current(nullptr);
    if (publisher_.joinable()) {   // without a last publish: what it reads may be gone
        {
            std::lock_guard lock(publish_m_);
            publish_stop_ = true;
        }
        publish_cv_.notify_all();
        publisher_.join();
    }
    // Cells of threads still alive are theirs to forget; this registry
    // owns them.
    for (auto* c : live_) delete c;
}

std::uint16_t registry::add_mount(std::string prefix, std::string iface) {
    std::lock_guard lock(m_);
    mounts_.push_back({std::move(prefix), std::move(iface)});
    return static_cast<std::uint16_t>(mounts_.size() - 1);
}

void registry::add_value(std::string name, std::string help, std::string type, std::string labels,
                         std::function<double()> read) {
    std::lock_guard lock(m_);
    // Beside the others of its name: render writes a family's header once.
    auto last = std::find_if(values_.rbegin(), values_.rend(), [&](const value& v) { return v.name == name; });
    values_.insert(last == values_.rend() ? values_.end() : last.base(), {std::move(name), std::move(help), std::move(type), std::move(labels), std::move(read)});
}

thread_cells& registry::local() {
    if (t_last == id_) return *t_last_cells;
    for (auto& sl : t_slots.slots)
        if (sl.id == id_) {
            t_last = id_;
            t_last_cells = sl.cells;
            return *sl.cells;
        }
    thread_cells* c;
    {
        // Under the lock: a pool thread may time a GIL wait while the
        // mounts are still being added (its own cells need none of them).
        std::lock_guard lock(m_);
        c = new thread_cells(mounts_.size());
        live_.push_back(c);
    }
    t_slots.slots.push_back({id_, c});
    t_last = id_;
    t_last_cells = c;
    return *c;
}

void registry::request_finished(std::uint16_t mount, unsigned status, std::uint64_t ns, std::uint64_t bytes_in,
                                std::uint64_t bytes_out, bool started) {
    mount_cells& m = local().mounts[mount];
    if (!started) m.started.add(1);   // never in flight: started and finished at once
    m.finished.add(1);
    unsigned cls = status / 100;
    if (cls >= 1 && cls <= 5) m.by_class[cls - 1].add(1);
    double s = static_cast<double>(ns) / 1e9;
    auto at = std::lower_bound(latency_bounds.begin(), latency_bounds.end(), s);
    m.buckets[static_cast<std::size_t>(at - latency_bounds.begin())].add(1);
    m.latency_ns.add(ns);
    m.bytes_in.add(bytes_in);
    m.bytes_out.add(bytes_out);
}

void registry::sum_into(std::vector<std::uint64_t>& mounts, std::array<std::uint64_t, thread_fields>& threads,
                        const thread_cells& c) const {
    for (std::size_t i = 0; i < c.mounts.size(); ++i) {
        const mount_cells& m = c.mounts[i];
        std::uint64_t* f = &mounts[i * per_mount];
        f[0] += m.started.get();
        f[1] += m.finished.get();
        f[2] += m.shed.get();
        for (std::size_t k = 0; k < 5; ++k) f[3 + k] += m.by_class[k].get();
        for (std::size_t k = 0; k < buckets; ++k) f[8 + k] += m.buckets[k].get();
        f[8 + buckets] += m.latency_ns.get();
        f[9 + buckets] += m.bytes_in.get();
        f[10 + buckets] += m.bytes_out.get();
    }
    threads[0] += c.gil_wait_ns.get();
    threads[1] += c.gil_waits.get();
    threads[2] += c.queue_wait_ns.get();
    threads[3] += c.queue_waits.get();
    threads[4] += c.ws_opened.get();
    threads[5] += c.ws_closed.get();
    for (std::size_t k = 0; k < conn_protocols; ++k) threads[6 + k] += c.conns[k].get();
    threads[6 + conn_protocols] += c.idle_conns.get();
    for (std::size_t k = 0; k < timeout_kinds; ++k) threads[7 + conn_protocols + k] += c.timeouts[k].get();
}

void registry::route_finished(std::uint16_t mount, std::string_view method, std::string_view prefix,
                              std::string_view rest, unsigned status, std::uint64_t ns) {
    static const std::vector<std::string> no_patterns;
    thread_local std::string key;
    key.clear();
    key += static_cast<char>(mount >> 8);
    key += static_cast<char>(mount & 0xff);
    router::append_route_name(key, method, prefix, rest, no_patterns);
    thread_cells& c = local();
    std::lock_guard lock(c.routes_m);
    auto it = c.routes.find(key);
    if (it == c.routes.end()) {
        std::string k = key;
        if (c.routes.size() >= max_routes) k.replace(2, std::string::npos, "OTHER");
        it = c.routes.try_emplace(std::move(k)).first;
    }
    ++it->second.requests;
    if (status >= 500) ++it->second.errors;
    it->second.latency_ns += ns;
}

std::unordered_map<std::string, route_counts> registry::routes_locked() {
    auto out = retired_routes_;
    for (auto* c : live_) {
        std::lock_guard lock(c->routes_m);
        for (auto& [k, v] : c->routes) {
            route_counts& r = out[k];
            r.requests += v.requests;
            r.errors += v.errors;
            r.latency_ns += v.latency_ns;
        }
    }
    return out;
}

void registry::retire(thread_cells* c) {
    std::lock_guard lock(m_);
    {
        std::lock_guard rl(c->routes_m);
        for (auto& [k, v] : c->routes) {
            route_counts& r = retired_routes_[k];
            r.requests += v.requests;
            r.errors += v.errors;
            r.latency_ns += v.latency_ns;
        }
    }
    if (retired_mounts_.size() < mounts_.size() * per_mount) retired_mounts_.resize(mounts_.size() * per_mount);
    sum_into(retired_mounts_, retired_threads_, *c);
    std::erase(live_, c);
    delete c;
}

std::size_t registry::counters_for(std::size_t mounts) { return mounts * per_mount + thread_fields; }

std::vector<std::size_t> registry::level_fields(std::size_t mounts) {
    std::vector<std::size_t> out;
    for (std::size_t k = 0; k <= conn_protocols; ++k) out.push_back(mounts * per_mount + 6 + k);
    return out;
}

std::vector<std::uint64_t> registry::collect() {
    std::vector<std::uint64_t> f;
    std::array<std::uint64_t, thread_fields> t{};
    {
        std::lock_guard lock(m_);
        f.assign(mounts_.size() * per_mount, 0);
        for (std::size_t i = 0; i < retired_mounts_.size(); ++i) f[i] = retired_mounts_[i];
        t = retired_threads_;
        for (auto* c : live_) sum_into(f, t, *c);
    }
    f.insert(f.end(), t.begin(), t.end());
    return f;
}

std::vector<double> registry::read_values() {
    std::vector<value> vals;
    {
        std::lock_guard lock(m_);
        vals = values_;
    }
    std::vector<double> out;
    out.reserve(vals.size());
    for (auto& v : vals) out.push_back(v.read());   // outside the lock: they may lock what they read
    return out;
}

bool registry::share(shared_table* table, int slot) {
    if (!table || !table->valid() || slot < 0 || table->counters() != counters_for(mounts_.size()) ||
        values_.size() > shared_table::max_values)
        return false;
    shared_ = table;
    slot_ = slot;
    publisher_ = std::thread([this] {
        std::unique_lock lock(publish_m_);
        while (!publish_stop_) {
            lock.unlock();
            publish();
            lock.lock();
            publish_cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return publish_stop_; });
        }
    });
    return true;
}

void registry::publish() {
    if (shared_) shared_->publish(slot_, collect(), read_values());
}

void registry::stop_sharing() {
    if (!publisher_.joinable()) return;
    {
        std::lock_guard lock(publish_m_);
        publish_stop_ = true;
    }
    publish_cv_.notify_all();
    publisher_.join();
    publish();   // the last counts, for the supervisor to fold in
}

std::string registry::render() {
    std::vector<std::uint64_t> f;
    std::vector<std::pair<int, std::vector<double>>> per_worker;   // (slot or -1, values)
    std::vector<mount_info> mounts;
    std::vector<value> vals;
    std::unordered_map<std::string, route_counts> routes;
    {
        std::lock_guard lock(m_);
        mounts = mounts_;
        vals = values_;
        routes = routes_locked();
    }
    if (shared_) {
        publish();
        f = shared_->sum();
        per_worker = shared_->values();
    } else {
        f = collect();
        per_worker.emplace_back(-1, read_values());
    }
    const std::uint64_t* t = &f[mounts.size() * per_mount];
    std::string out;
    out.reserve(4096 + mounts.size() * 2048);
    auto labels = [&](std::size_t i) {
        return "mount=\"" + label_value(mounts[i].prefix.empty() ? "/" : mounts[i].prefix) + "\",interface=\"" +
               label_value(mounts[i].iface) + "\"";
    };
    // Mount 0 only once it has seen a request: most tables never send one there.
    // A flask-async row, too; an unnamed row (an ASGI mount's) never.
    auto shown = [&](std::size_t i) {
        if (mounts[i].iface.empty()) return false;
        bool seen = f[i * per_mount] > 0 || f[i * per_mount + 2] > 0;
        return (i > 0 && mounts[i].iface != "flask-async") || seen;
    };

    header(out, "trestle_requests_total", "Requests answered, by mount, interface and status class.", "counter");
    static const char* classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    for (std::size_t i = 0; i < mounts.size(); ++i) {
        if (!shown(i)) continue;
        for (std::size_t k = 0; k < 5; ++k) {
            out += "trestle_requests_total{" + labels(i) + ",code=\"" + classes[k] + "\"} ";
            append_uint(out, f[i * per_mount + 3 + k]);
            out += '\n';
        }
    }
    header(out, "trestle_request_duration_seconds",
           "Time from the request reaching its app (or the server's own answer) to its response's end.", "histogram");
    for (std::size_t i = 0; i < mounts.size(); ++i) {
        if (!shown(i)) continue;
        std::uint64_t cum = 0;
        const std::uint64_t* m = &f[i * per_mount];
        for (std::size_t k = 0; k < buckets; ++k) {
            cum += m[8 + k];
            out += "trestle_request_duration_seconds_bucket{" + labels(i) + ",le=\"";
            if (k < latency_bounds.size()) append_number(out, latency_bounds[k]);
            else out += "+Inf";
            out += "\"} ";
            append_uint(out, cum);
            out += '\n';
        }
        out += "trestle_request_duration_seconds_sum{" + labels(i) + "} ";
        append_number(out, static_cast<double>(m[8 + buckets]) / 1e9);
        out += "\ntrestle_request_duration_seconds_count{" + labels(i) + "} ";
        append_uint(out, cum);
        out += '\n';
    }
    header(out, "trestle_requests_in_flight", "Requests whose response has not ended.", "gauge");
    for (std::size_t i = 0; i < mounts.size(); ++i) {
        if (!shown(i)) continue;
        const std::uint64_t* m = &f[i * per_mount];
        // Summed over threads read one after another: a request that ended
        // on another thread meanwhile may make the sum dip; never below 0.
        out += "trestle_requests_in_flight{" + labels(i) + "} ";
        append_uint(out, m[0] > m[1] ? m[0] - m[1] : 0);
        out += '\n';
    }
    header(out, "trestle_requests_shed_total",
           "Requests the server answered 503 because the mount's handler was full (the pool queue, the loop's limit).",
           "counter");
    for (std::size_t i = 0; i < mounts.size(); ++i) {
        if (!shown(i)) continue;
        out += "trestle_requests_shed_total{" + labels(i) + "} ";
        append_uint(out, f[i * per_mount + 2]);
        out += '\n';
    }
    header(out, "trestle_request_body_bytes_total", "Request body bytes the apps were given.", "counter");
    for (std::size_t i = 0; i < mounts.size(); ++i) {
        if (!shown(i)) continue;
        out += "trestle_request_body_bytes_total{" + labels(i) + "} ";
        append_uint(out, f[i * per_mount + 9 + buckets]);
        out += '\n';
    }
    header(out, "trestle_response_body_bytes_total", "Response body bytes sent.", "counter");
    for (std::size_t i = 0; i < mounts.size(); ++i) {
        if (!shown(i)) continue;
        out += "trestle_response_body_bytes_total{" + labels(i) + "} ";
        append_uint(out, f[i * per_mount + 10 + buckets]);
        out += '\n';
    }
    header(out, "trestle_pool_gil_wait_seconds_total",
           "Time pool threads waited to take the GIL at Trestle's hand-offs (a batch's start, after a body read "
           "or an output wait).",
           "counter");
    out += "trestle_pool_gil_wait_seconds_total ";
    append_number(out, static_cast<double>(t[0]) / 1e9);
    out += '\n';
    header(out, "trestle_pool_gil_waits_total", "Times pool threads took the GIL at those hand-offs.", "counter");
    out += "trestle_pool_gil_waits_total ";
    append_uint(out, t[1]);
    out += '\n';
    header(out, "trestle_pool_queue_wait_seconds", "Time jobs waited in the pool's queue before a thread ran them.",
           "summary");
    out += "trestle_pool_queue_wait_seconds_sum ";
    append_number(out, static_cast<double>(t[2]) / 1e9);
    out += "\ntrestle_pool_queue_wait_seconds_count ";
    append_uint(out, t[3]);
    out += '\n';

    header(out, "trestle_websockets_open", "WebSocket sessions open (HTTP/1.1 and HTTP/2).", "gauge");
    out += "trestle_websockets_open ";
    append_uint(out, t[4] > t[5] ? t[4] - t[5] : 0);
    out += '\n';
    header(out, "trestle_websockets_total", "WebSocket sessions handed to apps.", "counter");
    out += "trestle_websockets_total ";
    append_uint(out, t[4]);
    out += '\n';

    // Levels: sums of +1 and -1 modulo 2^64, read as signed (never below 0).
    auto level = [](std::uint64_t v) { return static_cast<std::int64_t>(v) > 0 ? v : std::uint64_t{0}; };
    header(out, "trestle_connections", "Client connections open, by what they speak now (http1, h2, websocket, tunnel).",
           "gauge");
    static const char* protocols[conn_protocols] = {"http1", "h2", "websocket", "tunnel"};
    for (std::size_t k = 0; k < conn_protocols; ++k) {
        out += "trestle_connections{protocol=\"";
        out += protocols[k];
        out += "\"} ";
        append_uint(out, level(t[6 + k]));
        out += '\n';
    }
    header(out, "trestle_connections_idle", "HTTP/1.1 connections between requests (keep-alive).", "gauge");
    out += "trestle_connections_idle ";
    append_uint(out, level(t[6 + conn_protocols]));
    out += '\n';
    header(out, "trestle_timeouts_total",
           "Timeouts, by kind: handshake (TLS), header, keepalive (idle connection closed), body (stalled or too slow), "
           "write (the client stopped reading), request (--timeout), websocket (idle, or no pong).",
           "counter");
    static const char* kinds[timeout_kinds] = {"handshake", "header", "keepalive", "body", "write", "request", "websocket"};
    for (std::size_t k = 0; k < timeout_kinds; ++k) {
        out += "trestle_timeouts_total{kind=\"";
        out += kinds[k];
        out += "\"} ";
        append_uint(out, t[7 + conn_protocols + k]);
        out += '\n';
    }

    // The values read at scrape time: this process's, or each worker's.
    for (std::size_t k = 0; k < vals.size(); ++k) {
        const value& v = vals[k];
        if (k == 0 || v.name != vals[k - 1].name) header(out, v.name.c_str(), v.help.c_str(), v.type.c_str());
        for (auto& [slot, values] : per_worker) {
            if (k >= values.size()) continue;
            std::string labels = v.labels;
            if (slot >= 0) labels += (labels.empty() ? "" : ",") + std::string("worker=\"") + std::to_string(slot) + "\"";
            out += v.name;
            if (!labels.empty()) out += "{" + labels + "}";
            out += ' ';
            append_number(out, values[k]);
            out += '\n';
        }
    }
    if (shared_) {
        header(out, "trestle_worker_restarts_total", "Workers the supervisor replaced, by cause.", "counter");
        auto r = shared_->restarts();
        for (std::size_t i = 0; i < r.size(); ++i) {
            out += "trestle_worker_restarts_total{cause=\"";
            out += cause_name(static_cast<restart_cause>(i));
            out += "\"} ";
            append_uint(out, r[i]);
            out += '\n';
        }
        header(out, "trestle_workers", "Worker processes serving.", "gauge");
        out += "trestle_workers ";
        append_uint(out, per_worker.size());
        out += '\n';
    }
    // Per route, this process's (with workers, the answering worker's).
    if (!routes.empty()) {
        std::vector<std::pair<std::string, route_counts>> sorted(routes.begin(), routes.end());
        std::sort(sorted.begin(), sorted.end(), [](auto& a, auto& b) { return a.first < b.first; });
        auto route_labels = [&](const std::string& key) {
            std::size_t row = (static_cast<std::size_t>(static_cast<unsigned char>(key[0])) << 8) |
                              static_cast<unsigned char>(key[1]);
            const mount_info& mi = row < mounts.size() ? mounts[row] : mounts[0];
            return "mount=\"" + label_value(mi.prefix.empty() ? "/" : mi.prefix) + "\",interface=\"" +
                   label_value(mi.iface) + "\",route=\"" + label_value(std::string_view(key).substr(2)) + "\"";
        };
        header(out, "trestle_route_requests_total",
               "Requests by route: the method and the path, with segments that name one thing (numbers, ids) as :id.",
               "counter");
        for (auto& [k, r] : sorted) {
            out += "trestle_route_requests_total{" + route_labels(k) + "} ";
            append_uint(out, r.requests);
            out += '\n';
        }
        header(out, "trestle_route_errors_total", "Requests by route answered 5xx.", "counter");
        for (auto& [k, r] : sorted) {
            out += "trestle_route_errors_total{" + route_labels(k) + "} ";
            append_uint(out, r.errors);
            out += '\n';
        }
        header(out, "trestle_route_duration_seconds_total", "Time spent answering each route (divide by its requests).",
               "counter");
        for (auto& [k, r] : sorted) {
            out += "trestle_route_duration_seconds_total{" + route_labels(k) + "} ";
            append_number(out, static_cast<double>(r.latency_ns) / 1e9);
            out += '\n';
        }
    }
    std::function<void(std::string&)> more;
    {
        std::lock_guard lock(m_);
        more = more_;
    }
    if (more) more(out);
    return out;
}

void registry::add_series(std::function<void(std::string&)> render) {
    std::lock_guard lock(m_);
    more_ = std::move(render);
}

} // namespace trestle::metrics
