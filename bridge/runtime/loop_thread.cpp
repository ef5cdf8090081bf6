#include "bridge/runtime/loop_thread.hpp"

#include "bridge/observability/log.hpp"
#include "bridge/python/interpreter.hpp"
#include "bridge/runtime/scheduling.hpp"
#include "bridge/runtime/thread_pool.hpp"

#include <cerrno>
#include <sys/eventfd.h>
#include <unistd.h>

namespace trestle::runtime {

namespace {

// _trestle.submit(fn): runs fn() on the blocking threads. Used by trestle's executor.
PyObject* submit_to_pool(PyObject* self, PyObject* fn) {
    auto* lt = static_cast<loop_thread*>(PyCapsule_GetPointer(self, "trestle.loop_thread"));
    if (!lt) return nullptr;
    py::ref job = py::ref::borrow(fn);
    bool ok = lt->executor().try_submit([job] {
        py::ref r = py::ref::steal(PyObject_CallNoArgs(job.get()));
        if (!r) py::print_exception();   // the executor's wrapper catches app errors itself
    });
    if (!ok) {
        PyErr_SetString(PyExc_RuntimeError, "trestle: the blocking threads' queue is full");
        return nullptr;
    }
    Py_RETURN_NONE;
}

PyObject* drain_callback(PyObject* self, PyObject*) {
    auto* lt = static_cast<loop_thread*>(PyCapsule_GetPointer(self, "trestle.loop_thread"));
    if (!lt) return nullptr;
    lt->drain();
    Py_RETURN_NONE;
}

PyMethodDef submit_def = {"submit", submit_to_pool, METH_O, "Run a callable on Trestle's blocking threads."};
PyMethodDef drain_def = {"_drain", drain_callback, METH_NOARGS, "Run work posted to the loop thread."};

// Imports module.attr, or null with the exception set.
py::ref import_attr(const char* module, const char* attr) {
    py::ref m = py::ref::steal(PyImport_ImportModule(module));
    if (!m) return {};
    return py::ref::steal(PyObject_GetAttrString(m.get(), attr));
}

} // namespace

loop_thread::loop_thread(std::string kind, thread_pool& executor, std::chrono::milliseconds startup_timeout)
    : kind_(std::move(kind)), executor_(executor), startup_timeout_(startup_timeout) {}

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
    return true;
}

void loop_thread::post(std::function<void()> fn) {
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
    set_thread_name("trestle-loop");
    PyGILState_STATE gstate = PyGILState_Ensure();
    bool ok = serve();   // every Python reference it made is gone when it returns
    drain();             // late work holds references: drop them with the GIL
    loop_.reset();
    PyGILState_Release(gstate);
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

    if (kind_ == "uvloop" || kind_ == "auto") {
        py::ref make = import_attr("uvloop", "new_event_loop");
        if (make) {
            loop_ = py::ref::steal(PyObject_CallNoArgs(make.get()));
            chosen_ = "uvloop";
        } else if (kind_ == "uvloop") {
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
    py::ref startup_s = py::ref::steal(PyFloat_FromDouble(static_cast<double>(startup_timeout_.count()) / 1000.0));
    py::ref ok = py::ref::steal(setup ? PyObject_CallFunctionObjArgs(setup.get(), loop_.get(), submit.get(), fd.get(),
                                                                     drain_fn.get(), startup_s.get(), nullptr)
                                      : nullptr);
    if (!ok) return fail("cannot set up the event loop");

    {
        std::lock_guard lock(m_);
        state_ = 1;
        started_cv_.notify_all();
    }
    py::ref r = py::ref::steal(PyObject_CallMethod(loop_.get(), "run_forever", nullptr));
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
    py::ref c = py::ref::steal(closer ? PyObject_CallFunctionObjArgs(closer.get(), loop_.get(), timeout.get(), nullptr) : nullptr);
    if (!c) py::print_exception();
    return true;
}

bool loop_thread::stop(std::chrono::milliseconds budget) {
    if (!thread_.joinable()) return true;
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
