#include "adapters/shadow/mirror.hpp"

#include "adapters/shadow/ports.hpp"
#include "bridge/router/route_name.hpp"
#include "bridge/core/handler.hpp"
#include "bridge/core/services.hpp"
#include "bridge/observability/access_format.hpp"
#include "bridge/observability/log.hpp"
#include "bridge/observability/metrics.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/python/ref.hpp"
#include "bridge/runtime/scheduling.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

namespace trestle::shadow {

namespace {

constexpr std::size_t kMaxRoutes = 100;   // past it, requests count under "OTHER"
constexpr double kFirstBound = 1e-5;

// A JSON string: the access log's escaper, which keeps valid UTF-8 and
// writes any other byte (a route from a client's path may hold one) as
// \u00NN, so the document stays valid JSON.
void json_string(std::string& out, std::string_view v) {
    out += '"';
    append_json_escaped(out, v);
    out += '"';
}

std::string number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

// The message of the Python exception set now, which is cleared.
std::string exception_text() {
    PyObject *type = nullptr, *value = nullptr, *tb = nullptr;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    py::ref t = py::ref::steal(type), v = py::ref::steal(value), b = py::ref::steal(tb);
    std::string name = t ? py::text(PyObject_GetAttrString(t.get(), "__name__")) : "error";
    PyErr_Clear();
    return name + ": " + py::text(v);
}

const char* drop_name(std::size_t i) {
    static const char* names[drop_kinds] = {"queue_full", "body_too_large", "judge_behind", "refused", "primary_failed"};
    return names[i];
}

enum verdict { match = 0, mismatch = 1, error = 2 };
const char* verdict_name[] = {"match", "mismatch", "error"};

} // namespace

// ---- latency_histogram ---------------------------------------------------------------

void latency_histogram::add(double seconds) {
    std::size_t i = 0;
    if (seconds > kFirstBound) {
        double k = std::ceil(std::log2(seconds / kFirstBound) * 8.0);
        i = static_cast<std::size_t>(std::min<double>(k, buckets - 1));
    }
    ++n_[i];
    ++count_;
}

double latency_histogram::quantile(double q) const {
    if (count_ == 0) return 0;
    auto want = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    want = std::max<std::uint64_t>(want, 1);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets; ++i) {
        seen += n_[i];
        if (seen >= want) return kFirstBound * std::exp2(static_cast<double>(i) / 8.0);
    }
    return kFirstBound * std::exp2(static_cast<double>(buckets - 1) / 8.0);
}

// ---- mirror ----------------------------------------------------------------------------

struct mirror::replay_io {
    boost::asio::io_context io{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    boost::asio::any_io_executor executor{io.get_executor()};
    std::thread thread;

    void start() {
        thread = std::thread([this] {
            runtime::set_thread_name("trestle-shadow");
            // Runs only when nothing else of this machine wants the core.
            if (!runtime::set_idle_scheduling())
                log::warning(std::string("shadow: cannot lower the replay thread's priority: ") + std::strerror(errno));
            io.run();
        });
    }
    // Calls in flight are abandoned: their frames, and the ports they hold,
    // go with the io_context.
    void stop() {
        work.reset();
        io.stop();
        if (thread.joinable()) thread.join();
    }
};

mirror::mirror(const mount_spec& primary, handler& shadow, std::string shadow_name)
    : opt_(*primary.shadow), prefix_(primary.prefix), shadow_name_(std::move(shadow_name)), shadow_(shadow) {
    py::ref mod = py::ref::steal(PyImport_ImportModule("trestle._shadow"));
    py::ref cls = py::ref::steal(mod ? PyObject_GetAttrString(mod.get(), "Settings") : nullptr);
    py::ref fn = py::ref::steal(mod ? PyObject_GetAttrString(mod.get(), "judge") : nullptr);
    auto list = [](const std::vector<std::string>& v) {
        py::ref l = py::ref::steal(PyList_New(0));
        for (auto& s : v) {
            py::ref item = py::ref::steal(PyUnicode_FromStringAndSize(s.data(), static_cast<Py_ssize_t>(s.size())));
            if (!l || !item || PyList_Append(l.get(), item.get()) != 0) return py::ref{};
        }
        return l;
    };
    py::ref mount = py::ref::steal(PyUnicode_FromString(prefix_.empty() ? "/" : prefix_.c_str()));
    py::ref headers = list(opt_.headers), ignore = list(opt_.ignore);
    py::ref norm = opt_.normalizer.empty() ? py::ref::borrow(Py_None)
                                           : py::ref::steal(PyUnicode_FromString(opt_.normalizer.c_str()));
    py::ref s = py::ref::steal(cls && fn && mount && headers && ignore && norm
                                   ? PyObject_CallFunctionObjArgs(cls.get(), mount.get(), headers.get(), ignore.get(),
                                                                  norm.get(), nullptr)
                                   : nullptr);
    if (!s) throw mount_error(2, "shadow: " + exception_text());
    settings_ = std::make_unique<py::ref>(std::move(s));
    judge_fn_ = std::make_unique<py::ref>(std::move(fn));
    if (primary.shadow->target->type == mount_spec::kind::proxy || primary.shadow->process)
        replay_io_ = std::make_unique<replay_io>();
    if (!opt_.log.empty()) {
        log_ = std::fopen(opt_.log.c_str(), "ae");
        if (!log_) throw mount_error(2, "shadow_log " + opt_.log + ": " + std::strerror(errno));
    }
}

mirror::~mirror() {
    // Normally stop() ran. The judge needs the GIL to end; a caller that
    // holds it lets it go for the join.
    if (thread_.joinable()) {
        if (PyGILState_Check()) {
            py::gil_release nogil;
            stop();
        } else {
            stop();
        }
    }
    if (log_) std::fclose(log_);
    // The Python references: the judge dropped them, unless it never ran
    // (then the caller holds the GIL, as for every handler).
}

bool mirror::wants(const net::request_head& h) const {
    if (h.upgrade) return false;
    if (std::find(opt_.methods.begin(), opt_.methods.end(), h.method) == opt_.methods.end()) return false;
    if (opt_.routes.empty()) return true;
    std::string_view rest = h.routed.rest();
    if (rest.empty()) rest = "/";
    return std::any_of(opt_.routes.begin(), opt_.routes.end(), [&](const std::string& p) { return router::glob_match(p, rest); });
}

bool mirror::take_slot() {
    if (opt_.sample < 1.0) {
        thread_local std::minstd_rand rng(std::random_device{}());
        if (std::uniform_real_distribution<double>(0.0, 1.0)(rng) >= opt_.sample) return false;
    }
    if (slots_.fetch_add(1, std::memory_order_acq_rel) >= opt_.queue) {
        slots_.fetch_sub(1, std::memory_order_acq_rel);
        dropped(drop::queue_full);
        return false;
    }
    return true;
}

std::string mirror::route_of(const net::request_head& h) const {
    return router::route_name(h.method, prefix_, h.routed.rest(), opt_.routes);
}

void mirror::replay(slot s, net::request_head head, net::endpoint_info ep, std::string body,
                    captured_response primary, double primary_seconds, const boost::asio::any_io_executor& io) {
    auto t = std::make_unique<trial>();
    t->primary = std::move(primary);
    t->primary_seconds = primary_seconds;
    auto port = std::make_shared<replay_port>(std::move(head), std::move(ep), std::move(body),
                                              replay_io_ ? replay_io_->executor : io, opt_.max_body,
                                              std::move(t), std::move(s));
    replayed_.fetch_add(1, std::memory_order_relaxed);
    {
        std::lock_guard lock(lm_);
        if (active_ >= opt_.concurrency) {
            waiting_.push_back(std::move(port));
            return;
        }
        ++active_;
    }
    launch(std::move(port));
}

void mirror::launch(std::shared_ptr<replay_port> port) {
    port->launched();
    bool wake;
    {
        // Every replay has the same timeout, so a new deadline is the latest:
        // the judge needs waking only if it waits for no deadline at all.
        std::lock_guard lock(qm_);
        wake = running_.empty();
        running_.push_back({port, std::chrono::steady_clock::now() + opt_.timeout});
    }
    if (wake) qcv_.notify_one();
    // Handlers are given requests on an io thread.
    boost::asio::any_io_executor io = port->io_executor();
    boost::asio::post(io, [self = shared_from_this(), port = std::move(port)]() {
        if (!self->shadow_.submit(port)) {
            self->dropped(drop::refused);
            port->refused();
        }
    });
}

void mirror::replay_finished() {
    std::shared_ptr<replay_port> next;
    {
        std::lock_guard lock(lm_);
        if (waiting_.empty()) {
            if (active_ > 0) --active_;
            return;
        }
        next = std::move(waiting_.front());
        waiting_.pop_front();
    }
    launch(std::move(next));
}

void mirror::judge(std::unique_ptr<trial> t) {
    bool wake = false;
    {
        std::lock_guard lock(qm_);
        if (!stopping_ && queue_.size() < opt_.queue) {
            // The judge empties the queue before it waits: one wakeup for
            // whatever arrives meanwhile.
            wake = queue_.empty();
            queue_.push_back(std::move(t));
            t = nullptr;
        }
    }
    if (t) return dropped(drop::judge_behind);
    if (wake) qcv_.notify_one();
}

void mirror::start() {
    if (replay_io_) replay_io_->start();
    thread_ = std::thread([this, idle = replay_io_ != nullptr] {
        runtime::set_thread_name("trestle-judge");
        // Beside a shadow in a process of its own the judge is the shadow's
        // only work left here: at idle priority too. (It takes the GIL only
        // for answers whose bytes differ; a primary thread waiting for the
        // GIL leaves the core idle, so the judge runs and lets it go.)
        if (idle) runtime::set_idle_scheduling();
        judge_loop();
    });
}

void mirror::stop() {
    // Replays still waiting to start never will: their ports (which hold
    // the mirror through their slots) go now, outside the lock.
    std::deque<std::shared_ptr<replay_port>> waiting;
    {
        std::lock_guard lock(lm_);
        waiting.swap(waiting_);
        active_ = opt_.concurrency;   // nothing more starts
    }
    {
        std::lock_guard lock(qm_);
        stopping_ = true;
    }
    waiting.clear();
    // The judge first: it may hold a running replay's port to cut it at its
    // deadline, and cutting wakes the proxy call on the replay io thread,
    // whose io_context must still be there.
    if (thread_.joinable()) {
        qcv_.notify_all();
        thread_.join();
    }
    if (replay_io_) {
        replay_io_->stop();
        replay_io_.reset();   // abandoned calls release their ports (and slots) here
    }
}

void mirror::judge_loop() {
    py::thread_state ts;
    std::unique_lock lock(qm_);
    for (;;) {
        auto now = std::chrono::steady_clock::now();
        auto next = std::chrono::steady_clock::time_point::max();
        // No strong reference to a port is dropped with qm_ held: the last
        // one destroys the port, which delivers to judge() (qm_ again) under
        // the port's own lock, the reverse of this order (ThreadSanitizer
        // reported it in CI). A due port's reference goes in `due`, released
        // below without the lock.
        std::vector<std::shared_ptr<replay_port>> due;
        for (std::size_t i = 0; i < running_.size();) {
            if (running_[i].deadline > now && !running_[i].port.expired()) {
                next = std::min(next, running_[i].deadline);
                ++i;
                continue;
            }
            if (running_[i].deadline <= now)
                if (std::shared_ptr<replay_port> p = running_[i].port.lock()) due.push_back(std::move(p));
            running_[i] = std::move(running_.back());
            running_.pop_back();
        }
        if (!due.empty()) {
            // Told, and maybe freed (judged in turn), outside the lock.
            lock.unlock();
            for (auto& p : due) p->time_out();
            due.clear();
            lock.lock();
            continue;
        }
        if (queue_.empty()) {
            if (stopping_) break;
            if (next == std::chrono::steady_clock::time_point::max()) qcv_.wait(lock);
            else qcv_.wait_until(lock, next);
            continue;
        }
        std::unique_ptr<trial> t = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        settle(*t, ts);
        t.reset();
        lock.lock();
    }
    lock.unlock();
    py::gil_restore gil(ts);
    settings_.reset();
    judge_fn_.reset();
}

namespace {
py::ref response_tuple(const captured_response& r) {
    py::ref headers = py::ref::steal(PyList_New(static_cast<Py_ssize_t>(r.headers.size())));
    if (!headers) return {};
    for (std::size_t i = 0; i < r.headers.size(); ++i) {
        PyObject* pair = Py_BuildValue("(s#s#)", r.headers[i].first.data(), static_cast<Py_ssize_t>(r.headers[i].first.size()),
                                       r.headers[i].second.data(), static_cast<Py_ssize_t>(r.headers[i].second.size()));
        if (!pair) return {};
        PyList_SET_ITEM(headers.get(), static_cast<Py_ssize_t>(i), pair);   // steals `pair`
    }
    return py::ref::steal(Py_BuildValue("(IOy#KOO)", r.status, headers.get(), r.body.data(),
                                        static_cast<Py_ssize_t>(r.body.size()), static_cast<unsigned long long>(r.size),
                                        r.complete ? Py_True : Py_False, r.unseen ? Py_True : Py_False));
}
} // namespace

void mirror::settle(trial& t, py::thread_state& ts) {
    std::string route = route_of(t.head);
    if (t.timed_out || !t.shadow.complete || t.shadow.malformed) return record(route, t, error, {});
    if (t.primary.same_as(t.shadow, opt_.headers)) return record(route, t, match, {});
    int v = error;
    std::string entry;
    {
        py::gil_restore gil(ts);
        py::ref p = response_tuple(t.primary), s = response_tuple(t.shadow);
        py::ref r;
        if (p && s) {
            py::ref rt = py::ref::steal(PyUnicode_FromStringAndSize(route.data(), static_cast<Py_ssize_t>(route.size())));
            py::ref m = py::ref::steal(PyUnicode_FromStringAndSize(t.head.method.data(), static_cast<Py_ssize_t>(t.head.method.size())));
            py::ref tg = py::ref::steal(PyUnicode_DecodeUTF8(t.head.target.data(), static_cast<Py_ssize_t>(t.head.target.size()), "replace"));
            if (rt && m && tg)
                r = py::ref::steal(PyObject_CallFunctionObjArgs(judge_fn_->get(), settings_->get(), rt.get(), m.get(),
                                                                tg.get(), p.get(), s.get(), nullptr));
        }
        if (!r) {
            log::error("shadow " + (prefix_.empty() ? std::string("/") : prefix_) + ": comparing the answers to " +
                       t.head.method + " " + t.head.target + " failed:");
            py::print_exception();
        } else if (r.get() == Py_None) {
            v = match;
        } else {
            v = mismatch;
            entry = py::text(r);
        }
    }
    record(route, t, v, std::move(entry));
}

void mirror::record(const std::string& route, const trial& t, int v, std::string entry) {
    std::lock_guard lock(book_m_);
    auto it = routes_.find(route);
    if (it == routes_.end()) it = routes_.size() < kMaxRoutes ? routes_.emplace(route, route_stats{}).first
                                                              : routes_.try_emplace("OTHER").first;
    route_stats& r = it->second;
    r.primary.add(t.primary_seconds);
    if (!t.timed_out) r.shadow.add(t.shadow_seconds);
    if (v == match) ++r.matched;
    else if (v == mismatch) ++r.mismatched;
    else ++r.errors;
    if (v != mismatch || r.kept.size() >= opt_.keep || entry.empty()) return;
    if (log_) {
        std::fwrite(entry.data(), 1, entry.size(), log_);
        std::fputc('\n', log_);
        std::fflush(log_);
    }
    double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    r.kept.emplace_back(now, std::move(entry));
}

void mirror::render(std::string& out, const char* family) const {
    std::string mount = metrics::label_value(prefix_.empty() ? "/" : prefix_);
    std::string_view f = family;
    if (f == "trestle_shadow_requests_total") {
        std::lock_guard lock(book_m_);
        for (auto& [route, r] : routes_) {
            std::uint64_t n[3] = {r.matched, r.mismatched, r.errors};
            for (int k = 0; k < 3; ++k)
                out += "trestle_shadow_requests_total{mount=\"" + mount + "\",route=\"" + metrics::label_value(route) +
                       "\",verdict=\"" + verdict_name[k] + "\"} " + std::to_string(n[k]) + "\n";
        }
    } else if (f == "trestle_shadow_latency_seconds") {
        std::lock_guard lock(book_m_);
        for (auto& [route, r] : routes_)
            for (auto [side, h] : {std::pair{"primary", &r.primary}, std::pair{"shadow", &r.shadow}})
                for (auto [q, qs] : {std::pair{0.5, "0.5"}, std::pair{0.99, "0.99"}})
                    out += "trestle_shadow_latency_seconds{mount=\"" + mount + "\",route=\"" +
                           metrics::label_value(route) + "\",side=\"" + side + "\",quantile=\"" + qs + "\"} " +
                           number(h->quantile(q)) + "\n";
    } else if (f == "trestle_shadow_dropped_total") {
        for (std::size_t i = 0; i < drop_kinds; ++i)
            out += "trestle_shadow_dropped_total{mount=\"" + mount + "\",reason=\"" + drop_name(i) + "\"} " +
                   std::to_string(drops_[i].load(std::memory_order_relaxed)) + "\n";
    } else if (f == "trestle_shadow_replayed_total") {
        out += "trestle_shadow_replayed_total{mount=\"" + mount + "\"} " +
               std::to_string(replayed_.load(std::memory_order_relaxed)) + "\n";
    } else if (f == "trestle_shadow_process_restarts_total") {
        if (restarts_)
            out += "trestle_shadow_process_restarts_total{mount=\"" + mount + "\"} " + std::to_string(restarts_()) + "\n";
    } else if (f == "trestle_shadow_queue") {
        out += "trestle_shadow_queue{mount=\"" + mount + "\"} " +
               std::to_string(std::min(slots_.load(std::memory_order_relaxed), opt_.queue)) + "\n";
    }
}

std::string mirror::json(std::vector<std::pair<double, std::string>>& mismatches) const {
    std::string out = "{\"mount\":";
    json_string(out, prefix_.empty() ? "/" : prefix_);
    out += ",\"shadow\":";
    json_string(out, shadow_name_);
    std::uint64_t dropped = 0;
    for (auto& d : drops_) dropped += d.load(std::memory_order_relaxed);
    out += ",\"sampled\":" + std::to_string(replayed_.load(std::memory_order_relaxed));
    out += ",\"dropped\":" + std::to_string(dropped);
    out += ",\"queue\":" + std::to_string(std::min(slots_.load(std::memory_order_relaxed), opt_.queue));
    out += ",\"queue_limit\":" + std::to_string(opt_.queue);
    std::lock_guard lock(book_m_);
    std::uint64_t compared = 0, mismatched = 0, errors = 0;
    std::string routes;
    for (auto& [route, r] : routes_) {
        compared += r.matched + r.mismatched;
        mismatched += r.mismatched;
        errors += r.errors;
        if (!routes.empty()) routes += ',';
        routes += "{\"route\":";
        json_string(routes, route);
        routes += ",\"compared\":" + std::to_string(r.matched + r.mismatched) + ",\"mismatched\":" +
                  std::to_string(r.mismatched) + ",\"errors\":" + std::to_string(r.errors);
        routes += ",\"primary_p50\":" + number(r.primary.quantile(0.5)) + ",\"primary_p99\":" + number(r.primary.quantile(0.99));
        routes += ",\"shadow_p50\":" + number(r.shadow.quantile(0.5)) + ",\"shadow_p99\":" + number(r.shadow.quantile(0.99));
        routes += '}';
        for (auto& k : r.kept) mismatches.push_back(k);
    }
    out += ",\"compared\":" + std::to_string(compared) + ",\"mismatched\":" + std::to_string(mismatched) +
           ",\"errors\":" + std::to_string(errors) + ",\"routes\":[" + routes + "]}";
    return out;
}

// ---- board -----------------------------------------------------------------------------

void board::render(std::string& out) const {
    struct family {
        const char* name;
        const char* help;
        const char* type;
    };
    static const family families[] = {
        {"trestle_shadow_requests_total",
         "Replayed requests judged, by route and verdict: match, mismatch, error (the shadow failed, or ran past "
         "shadow_timeout).",
         "counter"},
        {"trestle_shadow_dropped_total",
         "Requests not replayed or not judged, by reason (queue_full: every slot taken; judge_behind; refused: the "
         "shadow's pool or loop was full; body_too_large; primary_failed).",
         "counter"},
        {"trestle_shadow_replayed_total", "Requests replayed to the shadow.", "counter"},
        {"trestle_shadow_queue", "Replays queued or running now (at most shadow_queue).", "gauge"},
        {"trestle_shadow_process_restarts_total",
         "Times the shadow's process (shadow_process) ended on its own and was started again.", "counter"},
        {"trestle_shadow_latency_seconds",
         "The primary's and the shadow's latency on replayed requests, by route: p50 and p99 (in buckets 9% apart).",
         "gauge"},
    };
    if (mirrors_.empty()) return;
    for (auto& f : families) {
        out += "# HELP ";
        out += f.name;
        out += ' ';
        out += f.help;
        out += "\n# TYPE ";
        out += f.name;
        out += ' ';
        out += f.type;
        out += '\n';
        for (auto* m : mirrors_) m->render(out, f.name);
    }
}

std::string board::json() const {
    std::vector<std::pair<double, std::string>> kept;
    std::string out = "{\"mounts\":[";
    for (std::size_t i = 0; i < mirrors_.size(); ++i) {
        if (i) out += ',';
        out += mirrors_[i]->json(kept);
    }
    out += "],\"mismatches\":[";
    std::sort(kept.begin(), kept.end(), [](auto& a, auto& b) { return a.first > b.first; });
    for (std::size_t i = 0; i < kept.size(); ++i) {
        if (i) out += ',';
        out += kept[i].second;
    }
    out += "]}";
    return out;
}

} // namespace trestle::shadow
