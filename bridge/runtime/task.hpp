#pragma once
// A move-only `void()` callable: C++23's std::move_only_function, which
// C++20 lacks. The pool's jobs and the loop's posted work may own Python
// references, and py::ref is move-only, so std::function (which must be
// copyable) cannot hold them. A callable of up to three pointers that moves
// without throwing (a `this` and a shared_ptr, as most jobs are) is kept in
// place, so queueing one allocates nothing; a larger one goes to the heap.
// Calling an empty task is undefined.
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace trestle::runtime {

class task {
public:
    task() noexcept = default;
    task(std::nullptr_t) noexcept {}
    template <class F, class D = std::decay_t<F>,
              class = std::enable_if_t<!std::is_same_v<D, task> && std::is_invocable_r_v<void, D&>>>
    task(F&& f) {
        if constexpr (in_place<D>) {
            ::new (static_cast<void*>(buf_)) D(std::forward<F>(f));
            ops_ = &inline_ops<D>;
        } else {
            ::new (static_cast<void*>(buf_)) D*(new D(std::forward<F>(f)));
            ops_ = &heap_ops<D>;
        }
    }
    task(task&& o) noexcept { take(o); }
    task& operator=(task&& o) noexcept {
        if (this != &o) {
            reset();
            take(o);
        }
        return *this;
    }
    task& operator=(std::nullptr_t) noexcept {
        reset();
        return *this;
    }
    ~task() { reset(); }

    void operator()() { ops_->call(buf_); }
    explicit operator bool() const noexcept { return ops_ != nullptr; }

private:
    static constexpr std::size_t capacity = 3 * sizeof(void*);
    template <class D>
    static constexpr bool in_place = sizeof(D) <= capacity && alignof(D) <= alignof(std::max_align_t) &&
                                     std::is_nothrow_move_constructible_v<D>;

    struct ops_t {
        void (*call)(void*);
        void (*move)(void* from, void* to) noexcept;   // constructs at `to`, destroys `from`
        void (*destroy)(void*) noexcept;
    };

    template <class D> static D& at(void* p) { return *std::launder(static_cast<D*>(p)); }

    template <class D> static void call_inline(void* p) { at<D>(p)(); }
    template <class D> static void move_inline(void* from, void* to) noexcept {
        ::new (to) D(std::move(at<D>(from)));
        at<D>(from).~D();
    }
    template <class D> static void destroy_inline(void* p) noexcept { at<D>(p).~D(); }
    template <class D> static constexpr ops_t inline_ops{&call_inline<D>, &move_inline<D>, &destroy_inline<D>};

    template <class D> static void call_heap(void* p) { (*at<D*>(p))(); }
    template <class D> static void move_heap(void* from, void* to) noexcept { ::new (to) D*(at<D*>(from)); }
    template <class D> static void destroy_heap(void* p) noexcept { delete at<D*>(p); }
    template <class D> static constexpr ops_t heap_ops{&call_heap<D>, &move_heap<D>, &destroy_heap<D>};

    void take(task& o) noexcept {
        if (!o.ops_) return;
        o.ops_->move(o.buf_, buf_);
        ops_ = std::exchange(o.ops_, nullptr);
    }
    void reset() noexcept {
        if (const ops_t* ops = std::exchange(ops_, nullptr)) ops->destroy(buf_);
    }

    alignas(std::max_align_t) unsigned char buf_[capacity];
    const ops_t* ops_ = nullptr;
};

} // namespace trestle::runtime
