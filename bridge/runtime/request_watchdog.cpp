#include "bridge/runtime/request_watchdog.hpp"

#include "bridge/observability/log.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/runtime/scheduling.hpp"
#include "bridge/supervisor/worker_link.hpp"

#include <cstdio>

namespace trestle::runtime {

// Written and read with the GIL held, which orders the pool thread's end of
// a request against the raising thread's check that it still runs it.
struct thread_slot {
    unsigned long ident = 0;                    // PyThread_get_thread_ident()
    const net::app_port* running = nullptr;     // the request this thread is in
};

namespace {

using clock = std::chrono::steady_clock;

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", s);
    return buf;
}

std::string seconds_text(clock::duration d) {
    return seconds_text(std::chrono::duration<double>(d).count());
}

std::string describe(const net::app_port& ex) { return ex.head().method + " " + ex.head().target; }

// trestle.NAME or trestle._runtime.NAME; null with the exception printed.
py::ref import_attr(const char* module, const char* name) {
    py::ref m = py::ref::steal(PyImport_ImportModule(module));
    py::ref a = py::ref::steal(m ? PyObject_GetAttrString(m.get(), name) : nullptr);
    if (!a) py::print_exception();
    return a;
}

// The slot of the calling pool thread, for the watchdog that made it.
thread_local request_watchdog* tl_owner = nullptr;
thread_local thread_slot* tl_slot = nullptr;

} // namespace

request_watchdog::request_watchdog(std::chrono::milliseconds timeout, std::chrono::milliseconds grace)
    : timeout_(timeout), grace_(grace) {
    exc_type_ = import_attr("trestle", "RequestTimeout");
    report_fn_ = import_attr("trestle._runtime", "timeout_report");
    absorb_fn_ = import_attr("trestle._runtime", "absorb_pending");
    raiser_ = std::thread([this] { raise_loop(); });
    bookkeeper_ = std::thread([this] { stuck_loop(); });
}

request_watchdog::~request_watchdog() {
    // stop() normally came first; joining here would wait for the GIL we hold.
    if (raiser_.joinable() || bookkeeper_.joinable()) {
        py::gil_release nogil;
        stop(std::chrono::milliseconds(1000));
    }
}

thread_slot* request_watchdog::this_thread_slot() {
    if (tl_owner == this) return tl_slot;
    std::lock_guard lock(m_);
    thread_slot& s = slots_.emplace_back();
    s.ident = PyThread_get_thread_ident();
    tl_owner = this;
    tl_slot = &s;
    return &s;
}

// ---- the pool thread's side -------------------------------------------------

request_watchdog::request::request(request_watchdog* w, net::app_port& ex) : w_(w), ex_(ex) {
    if (!w_) return;
    slot_ = w_->this_thread_slot();
    slot_->running = &ex;
    ex.arm_timeout(clock::now() + w_->timeout_, w_, slot_);
}

request_watchdog::request::~request() {
    if (!w_) return;
    // From here the raising thread leaves this thread alone...
    slot_->running = nullptr;
    if (!ex_.timed_out()) return;
    // ...and an exception it raised that has not landed yet must not land
    // in this thread's next request.
    w_->absorb_pending();
    w_->came_back(ex_);
}

void request_watchdog::absorb_pending() {
    // Clearing it with PyThreadState_SetAsyncExc(id, NULL) would leave
    // CPython's interpreter-wide "async exception pending" flag set for
    // good (3.11), so every thread would take the slow path of the eval
    // loop's checks from then on. Letting it land in a call that does
    // nothing clears both; the call's first instruction checks for it.
    PyObject *type, *value, *tb;   // owned: restored below
    PyErr_Fetch(&type, &value, &tb);
    py::ref r = py::ref::steal(absorb_fn_ ? PyObject_CallNoArgs(absorb_fn_.get()) : nullptr);
    if (!r) PyErr_Clear();
    PyErr_Restore(type, value, tb);
}

void request_watchdog::came_back(net::app_port& ex) {
    std::optional<overdue_ledger::entry> e;
    {
        std::lock_guard lock(m_);
        e = ledger_.came_back(&ex);
        stuck_count_.store(ledger_.stuck(), std::memory_order_relaxed);
    }
    if (!e) return;
    std::string late = seconds_text(clock::now() - e->timed_out_at);
    if (e->stuck)
        log::warning("request timeout: the thread reported stuck with " + e->what + " came back after all, " + late +
                     " s after its timeout");
    else
        log::info("request timeout: the thread of " + e->what + " came back " + late +
                  " s after its timeout (recovered); it serves again");
}

// ---- the io thread's side -----------------------------------------------------

void request_watchdog::request_timed_out(net::app_port& ex, bool answered, void* tag) {
    auto now = clock::now();
    std::lock_guard lock(m_);
    if (stopping_) return;
    ledger_.add(&ex, describe(ex), now, now + grace_);
    jobs_.push_back({ex.shared_from_this(), static_cast<thread_slot*>(tag), answered});
    raise_cv_.notify_one();
    stuck_cv_.notify_one();
}

// ---- the raising thread -------------------------------------------------------

void request_watchdog::raise_loop() {
    set_thread_name("trestle-raise");
    std::unique_lock lock(m_);
    for (;;) {
        raise_cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (stopping_) break;
        raise_job job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        raise_in(job);
        job.ex.reset();   // outside the lock: it may be the last owner
        lock.lock();
    }
    raise_done_ = true;
    done_cv_.notify_all();
}

void request_watchdog::raise_in(const raise_job& job) {
    std::string head = "request timeout: " + describe(*job.ex) + " ran longer than --timeout (" +
                       seconds_text(timeout_) + " s); " +
                       (job.answered ? "answered 504" : "its response had started, so its connection was closed");
    py::gil_ensure gil;
    // The job holds the exchange, so no later request can have its address.
    if (job.slot->running != job.ex.get()) {
        log::error(head + "; its thread was just finishing it");
        return;
    }
    std::string where = "  (the stack could not be read)\n";
    py::ref ident = py::ref::steal(PyLong_FromUnsignedLong(job.slot->ident));
    py::ref message = py::ref::steal(PyUnicode_FromString(("trestle: the request ran longer than --timeout (" +
                                                           seconds_text(timeout_) + " s)").c_str()));
    py::ref r = py::ref::steal(report_fn_ && ident && message
                                   ? PyObject_CallFunctionObjArgs(report_fn_.get(), ident.get(), message.get(), nullptr)
                                   : nullptr);
    const char* text = r ? PyUnicode_AsUTF8(r.get()) : nullptr;
    if (text) where = text;
    else py::print_exception();
    while (!where.empty() && where.back() == '\n') where.pop_back();   // the log adds its own
    if (exc_type_) PyThreadState_SetAsyncExc(job.slot->ident, exc_type_.get());
    // Logged before the GIL goes back, so before anything the thread prints
    // when the exception lands.
    log::error(head + "; raising trestle.RequestTimeout in its thread, which is at (most recent call last):\n" + where);
}

// ---- the bookkeeping thread -----------------------------------------------------

void request_watchdog::stuck_loop() {
    set_thread_name("trestle-timeout");
    std::unique_lock lock(m_);
    while (!stopping_) {
        if (auto due = ledger_.next_due()) stuck_cv_.wait_until(lock, *due);
        else stuck_cv_.wait(lock);
        if (stopping_) break;
        auto stuck = ledger_.newly_stuck(clock::now());
        stuck_count_.store(ledger_.stuck(), std::memory_order_relaxed);
        if (stuck.empty()) continue;
        lock.unlock();
        for (auto& e : stuck) report_stuck(e);
        lock.lock();
    }
}

void request_watchdog::report_stuck(const overdue_ledger::entry& e) {
    bool told = supervisor::tell(supervisor::worker_event::stuck);
    log::warning("request timeout: thread stuck in C code " + seconds_text(clock::now() - e.timed_out_at) +
                 " s after its timeout (" + e.what + ", --timeout-grace " + seconds_text(grace_) + " s); " +
                 (told ? "this worker will be replaced"
                       : "no supervisor runs this worker, so it serves on with one pool thread fewer until it is "
                         "restarted; shutdown will not wait for that thread"));
}

bool request_watchdog::stop(std::chrono::milliseconds wait) {
    {
        std::lock_guard lock(m_);
        stopping_ = true;
        jobs_.clear();   // their exchanges are C++ only: no GIL needed
    }
    raise_cv_.notify_all();
    stuck_cv_.notify_all();
    if (bookkeeper_.joinable()) bookkeeper_.join();
    if (!raiser_.joinable()) return true;
    std::unique_lock lock(m_);
    if (!done_cv_.wait_for(lock, wait, [&] { return raise_done_; })) return false;
    lock.unlock();
    raiser_.join();
    return true;
}

} // namespace trestle::runtime
