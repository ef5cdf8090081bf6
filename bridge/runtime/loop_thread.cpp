#include "bridge/runtime/loop_thread.hpp"

#include "bridge/observability/log.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/runtime/scheduling.hpp"
#include "bridge/runtime/thread_pool.hpp"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <sys/eventfd.h>
#include <unistd.h>

namespace trestle::runtime {

namespace {

// _trestle.submit(fn): runs fn() on the blocking threads. Used by trestle's executor.
PyObject* submit_to_pool(PyObject* self, PyObject* fn) {
    auto* lt = static_cast<loop_thread*>(PyCapsule_GetPointer(self, "trestle.loop_thread"));
    if (!lt) return nullptr;
    bool ok = lt->executor().try_submit([job = py::ref::borrow(fn)] {
        py::ref r = py::ref::steal(PyObject_CallNoArgs(job.get()));
        if (!r) py::print_exception();   // the executor's wrapper catches app errors itself
    });
    if (!ok) {
        PyErr_SetString(PyExc_RuntimeError, "trestle: the blocking threads' queue is full");
        return nullptr;
    }
    Py_RETURN_NONE;
}

// _beat(tasks): tasks is the loop's task count, or None between counts.
PyObject* beat_callback(PyObject* self, PyObject* tasks) {
    auto* lt = static_cast<loop_thread*>(PyCapsule_GetPointer(self, "trestle.loop_thread"));
    if (!lt) return nullptr;
    long long n = tasks == Py_None ? -1 : PyLong_AsLongLong(tasks);
    if (n == -1 && PyErr_Occurred()) return nullptr;
    lt->beat(n);
    Py_RETURN_NONE;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", s);
    return buf;
}

PyObject* drain_callback(PyObject* self, PyObject*) {
    auto* lt = static_cast<loop_thread*>(PyCapsule_GetPointer(self, "trestle.loop_thread"));
    if (!lt) return nullptr;
    lt->drain();
    Py_RETURN_NONE;
}

PyMethodDef submit_def = {"submit", submit_to_pool, METH_O, "Run a callable on Trestle's blocking threads."};
PyMethodDef drain_def = {"_drain", drain_callback, METH_NOARGS, "Run work posted to the loop thread."};
PyMethodDef beat_def = {"_beat", beat_callback, METH_O, "Tell the watchdog the loop turns (and its task count)."};

// Imports module.attr, or null with the exception set.
py::ref import_attr(const char* module, const char* attr) {
    py::ref m = py::ref::steal(PyImport_ImportModule(module));
    if (!m) return {};
    return py::ref::steal(PyObject_GetAttrString(m.get(), attr));
}

} // namespace

loop_thread::loop_thread(loop_settings s, thread_pool& executor, py::ref owner)
    : s_(std::move(s)), executor_(executor), owner_(std::move(owner)),
      // Often enough that a stall is seen soon after the threshold; rare
      // enough to cost nothing (at most 100 timer callbacks a second).
      beat_period_(s_.block_warn.count() > 0
                       ? std::clamp(s_.block_warn / 5, std::chrono::milliseconds(10), std::chrono::milliseconds(100))
                       : std::chrono::milliseconds(100)) {}

loop_thread::~loop_thread() {
    if (efd_ >= 0) ::close(efd_);
}

bool loop_thread::start() {
    efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd_ < 0) {
        log::error("eventfd failed");
        return false;
    }
    thread_ = std::thread([this] { run(); });
    std::unique_lock lock(m_);
    started_cv_.wait(lock, [&] { return state_ != 0; });
    if (state_ < 0) {
        lock.unlock();
        thread_.join();
        return false;
    }
    lock.unlock();
    if (s_.measured) last_beat_ns_.store(now_ns(), std::memory_order_relaxed);
    if (s_.block_warn.count() > 0) {
        last_beat_ns_.store(now_ns(), std::memory_order_relaxed);
        watchdog_ = std::thread([this] { watch(); });
    }
    return true;
}

void loop_thread::beat(std::int64_t tasks) {
    std::int64_t now = now_ns();
    std::int64_t last = last_beat_ns_.exchange(now, std::memory_order_relaxed);
    // The first beat has nothing to be late against.
    std::int64_t late = last == 0 ? 0 : now - last - std::chrono::nanoseconds(beat_period_).count();
    last_lag_ns_.store(late > 0 ? late : 0, std::memory_order_relaxed);
    if (tasks >= 0) tasks_.store(tasks, std::memory_order_relaxed);
}

double loop_thread::cpu_seconds() const {
    clockid_t id;
    timespec ts{};
    if (!thread_.joinable() || pthread_getcpuclockid(const_cast<std::thread&>(thread_).native_handle(), &id) != 0 ||
        clock_gettime(id, &ts) != 0)
        return 0;
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double loop_thread::lag_seconds() const {
    std::int64_t last = last_beat_ns_.load(std::memory_order_relaxed);
    if (last == 0) return 0;
    std::int64_t overdue = now_ns() - last - std::chrono::nanoseconds(beat_period_).count();
    return static_cast<double>(std::max(overdue, last_lag_ns_.load(std::memory_order_relaxed))) / 1e9;
}

void loop_thread::watch() {
    set_thread_name("trestle-watch");
    const std::int64_t warn_ns = std::chrono::nanoseconds(s_.block_warn).count();
    const std::int64_t period_ns = std::chrono::nanoseconds(beat_period_).count();
    bool stalled = false;
    std::int64_t stalled_from = 0;
    std::unique_lock lock(watch_m_);
    while (!watch_stop_) {
        watch_cv_.wait_for(lock, beat_period_);
        if (watch_stop_) break;
        std::int64_t last = last_beat_ns_.load(std::memory_order_relaxed);
        std::int64_t gap = now_ns() - last;
        if (!stalled && gap > warn_ns + period_ns) {
            // One report per stall, however long it lasts.
            stalled = true;
            stalled_from = last;
            std::uint64_t count = blocked_count_.fetch_add(1, std::memory_order_relaxed) + 1;
            lock.unlock();
            report_stall(gap - period_ns, count);
            lock.lock();
        } else if (stalled && last != stalled_from) {
            stalled = false;
            double took = static_cast<double>(last - stalled_from - period_ns) / 1e9;
            log::warning(s_.label + " ran again after being blocked for about " + seconds_text(took) + " s");
        }
    }
    watch_done_ = true;
    watch_cv_.notify_all();
}

void loop_thread::report_stall(std::int64_t gap_ns, std::uint64_t count) {
    // The stack is read under the GIL. A loop blocked in time.sleep or I/O
    // has released it; one running Python code hands it over within the
    // switch interval; only C code that keeps it makes this wait (and the
    // stack is then where that code returned to).
    std::string stack = "  (the stack could not be read)";
    {
        py::gil_ensure gil;
        py::ref fn = import_attr("trestle._runtime", "loop_stack");
        py::ref ident = py::ref::steal(PyLong_FromUnsignedLong(py_ident_));
        py::ref r = py::ref::steal(fn && ident ? PyObject_CallOneArg(fn.get(), ident.get()) : nullptr);
        const char* text = r ? PyUnicode_AsUTF8(r.get()) : nullptr;
        if (text) stack = text;
        else PyErr_Clear();
    }
    while (!stack.empty() && stack.back() == '\n') stack.pop_back();   // the log adds its own
    log::warning(s_.label + " has been blocked for " + seconds_text(static_cast<double>(gap_ns) / 1e9) +
                 " s (--loop-block-warn " + seconds_text(static_cast<double>(s_.block_warn.count()) / 1000.0) +
                 "), blocked " + std::to_string(count) +
                 " time(s) so far: every ASGI request and Flask async view on it waits. A blocking call "
                 "(time.sleep, sync I/O, heavy CPU) belongs in asyncio.to_thread. Loop thread stack (most recent call last):\n" +
                 stack);
}

bool loop_thread::stop_watchdog(std::chrono::milliseconds wait) {
    if (!watchdog_.joinable()) return true;
    std::unique_lock lock(watch_m_);
    watch_stop_ = true;
    watch_cv_.notify_all();
    // It may be waiting for the GIL, held by a loop stuck in C code.
    if (!watch_cv_.wait_for(lock, wait, [&] { return watch_done_; })) return false;
    lock.unlock();
    watchdog_.join();
    return true;
}

void loop_thread::post(task fn) {
    bool signal = false;
    {
        std::lock_guard lock(m_);
        queue_.push_back(std::move(fn));
        if (!signaled_) signaled_ = signal = true;
    }
    if (signal) {
        std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(efd_, &one, sizeof one);
    }
}

void loop_thread::drain() {
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(efd_, &count, sizeof count);
    // Only the loop thread drains, so running_ is its own between the swaps.
    {
        std::lock_guard lock(m_);
        running_.swap(queue_);
        signaled_ = false;
    }
    for (auto& fn : running_) {
        fn();
        fn = nullptr;   // captured Python references go while the GIL is held
    }
    running_.clear();
}

void loop_thread::run() {
    set_batch_scheduling();
    set_thread_name(s_.thread_name.c_str());
    bool ok;
    {
        py::gil_ensure gil;   // the thread's state for its life; the loop drops the GIL while it waits
        py_ident_ = PyThread_get_thread_ident();
        ok = serve();   // every Python reference it made is gone when it returns
        drain();        // late work holds references: drop them with the GIL
        loop_.reset();
        owner_.reset();
    }
    std::lock_guard lock(m_);
    if (!ok) state_ = -1;
    finished_ = true;
    started_cv_.notify_all();
}

bool loop_thread::serve() {
    auto fail = [&](const std::string& why) {
        log::error(why);
        py::print_exception();
        return false;
    };

    if (s_.kind == "uvloop" || s_.kind == "auto") {
        py::ref make = import_attr("uvloop", "new_event_loop");
        if (make) {
            loop_ = py::ref::steal(PyObject_CallNoArgs(make.get()));
            chosen_ = "uvloop";
        } else if (s_.kind == "uvloop") {
            return fail("--loop uvloop: uvloop cannot be imported");
        } else {
            PyErr_Clear();
        }
    }
    if (!loop_) {
        py::ref make = import_attr("asyncio", "new_event_loop");
        loop_ = py::ref::steal(make ? PyObject_CallNoArgs(make.get()) : nullptr);
        chosen_ = "asyncio";
    }
    if (!loop_) return fail("cannot create the event loop");

    // The C functions the Python side needs, bound to this loop_thread.
    py::ref capsule = py::ref::steal(PyCapsule_New(this, "trestle.loop_thread", nullptr));
    py::ref submit = py::ref::steal(PyCFunction_New(&submit_def, capsule.get()));
    py::ref drain_fn = py::ref::steal(PyCFunction_New(&drain_def, capsule.get()));
    py::ref setup = import_attr("trestle._runtime", "setup_loop");
    py::ref fd = py::ref::steal(PyLong_FromLong(efd_));
    py::ref startup_s = py::ref::steal(PyFloat_FromDouble(static_cast<double>(s_.startup_timeout.count()) / 1000.0));
    py::ref beat_fn = s_.block_warn.count() > 0 || s_.measured
                          ? py::ref::steal(PyCFunction_New(&beat_def, capsule.get()))
                          : py::ref::borrow(Py_None);
    py::ref period = py::ref::steal(PyFloat_FromDouble(static_cast<double>(beat_period_.count()) / 1000.0));
    py::borrowed owner = owner_ ? owner_.get() : Py_None;
    py::ref ok = py::ref::steal(setup ? PyObject_CallFunctionObjArgs(setup.get(), loop_.get(), submit.get(), fd.get(),
                                                                     drain_fn.get(), startup_s.get(), beat_fn.get(),
                                                                     period.get(), owner.get(), nullptr)
                                      : nullptr);
    if (!ok) return fail("cannot set up the event loop");

    {
        std::lock_guard lock(m_);
        state_ = 1;
        started_cv_.notify_all();
    }
    meter_turns(&turns_);
    py::ref r = py::ref::steal(PyObject_CallMethod(loop_.get(), "run_forever", nullptr));
    meter_turns(nullptr);
    if (!r) {
        log::error("the event loop stopped with an exception:");
        py::print_exception();
    }
    py::ref closer = import_attr("trestle._runtime", "close_loop");
    std::chrono::milliseconds budget;
    {
        std::lock_guard lock(m_);
        budget = close_budget_;
    }
    py::ref timeout = budget.count() < 0 ? py::ref::borrow(Py_None)
                                         : py::ref::steal(PyFloat_FromDouble(static_cast<double>(budget.count()) / 1000.0));
    py::borrowed close_owner = owner_ ? owner_.get() : Py_None;
    py::ref c = py::ref::steal(closer ? PyObject_CallFunctionObjArgs(closer.get(), loop_.get(), timeout.get(), close_owner.get(), nullptr)
                                      : nullptr);
    if (!c) py::print_exception();
    return true;
}

bool loop_thread::stop(std::chrono::milliseconds budget) {
    if (!thread_.joinable()) return true;
    // First the watchdog: closing the loop stops its heartbeat, which is no stall.
    if (!stop_watchdog(budget + std::chrono::seconds(1))) return false;
    {
        std::lock_guard lock(m_);
        close_budget_ = budget;
    }
    post([this] {
        py::ref r = py::ref::steal(PyObject_CallMethod(loop_.get(), "stop", nullptr));
        if (!r) py::print_exception();
    });
    // close_loop gives up on what overruns the budget; the second covers
    // its own bookkeeping. A loop thread stuck in a callback never gets there.
    std::unique_lock lock(m_);
    if (!started_cv_.wait_for(lock, budget + std::chrono::seconds(1), [&] { return finished_; })) return false;
    lock.unlock();
    thread_.join();
    return true;
}

} // namespace trestle::runtime
