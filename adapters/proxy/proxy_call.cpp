#include "adapters/proxy/proxy_call.hpp"

#include "adapters/proxy/conn_pool.hpp"
#include "adapters/proxy/deadline_queue.hpp"
#include "adapters/proxy/response_parser.hpp"
#include "adapters/proxy/rewrite.hpp"
#include "adapters/proxy/tunnel.hpp"
#include "bridge/net/app_port.hpp"
#include "bridge/net/cloexec.hpp"
#include "bridge/net/http_util.hpp"
#include "bridge/net/response_writer.hpp"
#include "bridge/net/server_context.hpp"
#include "bridge/observability/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <charconv>
#include <optional>

namespace trestle::proxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

constexpr std::size_t io_chunk = 64 * 1024;
constexpr std::size_t max_response_head = 64 * 1024;

// The memory of a relay's read buffer, kept per io thread. A buffer of
// io_chunk bytes comes from and goes back to a small cache; malloc would
// take it from the top of the heap and, on free, consolidate the heap, on
// every request. Other sizes (a buffer grown for a long head) go to the heap.
class chunk_cache {
public:
    ~chunk_cache() {
        for (std::size_t i = 0; i < n_; ++i) ::operator delete(free_[i]);
    }
    static chunk_cache& here() {
        thread_local chunk_cache c;
        return c;
    }
    void* take(std::size_t size) {
        if (size == io_chunk && n_ > 0) return free_[--n_];
        return ::operator new(size);
    }
    void give(void* p, std::size_t size) {
        if (size == io_chunk && n_ < std::size(free_)) free_[n_++] = p;
        else ::operator delete(p);
    }

private:
    void* free_[4];
    std::size_t n_ = 0;
};

template <class T>
struct chunk_allocator {
    using value_type = T;
    chunk_allocator() = default;
    template <class U>
    chunk_allocator(const chunk_allocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(chunk_cache::here().take(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { chunk_cache::here().give(p, n * sizeof(T)); }
    friend bool operator==(chunk_allocator, chunk_allocator) { return true; }
};

using read_buffer = beast::basic_flat_buffer<chunk_allocator<char>>;

bool idempotent(std::string_view m) {
    return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

// Appends `data` to `out` in the framing the client used.
void frame_body(std::string& out, std::string_view data, bool chunked, bool last) {
    if (!chunked) {
        out.append(data);
        return;
    }
    if (!data.empty()) {
        char size[20];
        auto [p, ec] = std::to_chars(size, size + sizeof size, data.size(), 16);
        out.append(size, p);
        out += "\r\n";
        out.append(data);
        out += "\r\n";
    }
    if (last) out += "0\r\n\r\n";
}

// How one attempt on one upstream connection ended.
enum class outcome {
    done,          // the exchange is finished
    retry_fresh,   // a reused connection failed before any response byte; the request may be resent
    retry_next,    // this upstream failed before any response byte; the request may go elsewhere
    failed,        // answer the recorded error
};

class call : public std::enable_shared_from_this<call>, private deadline_queue::entry {
public:
    call(std::shared_ptr<net::app_port> ex, std::shared_ptr<mount_state> m)
        : ex_(std::move(ex)), m_(std::move(m)), w_(*ex_, m_->ctx), sock_(ex_->io_executor()) {}

    asio::awaitable<void> run();

private:
    // The upstream's reads and writes each have a deadline, and one entry
    // in the io thread's deadline_queue serves both, lazily: setting or
    // clearing a deadline only records it (linking the call into the queue
    // if it was not, or moving it if the new deadline is nearer), and the
    // entry, when it expires, closes the socket if a deadline has passed or
    // else waits again for the nearer one.
    enum class deadline { read, write };
    using timer_slot = std::optional<asio::steady_timer>;   // made when first needed

    asio::awaitable<outcome> attempt(std::size_t idx, bool fresh);
    asio::awaitable<error_code> connect(const upstream& u);
    void take_ready_body(std::string& out);
    asio::awaitable<void> upload(std::shared_ptr<call> self);
    asio::awaitable<outcome> relay(std::size_t idx);
    outcome switch_protocols(std::size_t idx, response_parser& p, read_buffer& buf);
    auto read_upstream(read_buffer& buf);
    error_code read_ended(error_code ec);
    asio::awaitable<bool> flush();
    asio::awaitable<void> wait(timer_slot& t);
    static void cancel(timer_slot& t);

    void note_failure(std::size_t idx, unsigned status, std::string text, const std::string& detail);
    outcome truncated(std::size_t idx, const std::string& detail);
    outcome client_left();
    void answer(unsigned status, const std::string& text);
    void release(std::size_t idx, bool reusable);
    void client_failed();
    void on_event();
    void install_waker();
    void arm(deadline d, clock::duration dur);
    void disarm(deadline d);
    void wait_deadline(clock::time_point at);
    void expired() override;
    void close_upstream();
    void log_upstream(std::size_t idx, const std::string& what) const;

    std::shared_ptr<net::app_port> ex_;
    std::shared_ptr<mount_state> m_;
    net::response_writer w_;   // refers to *ex_, so declared after it
    tcp::socket sock_;
    timer_slot body_timer_, out_timer_;   // waits for the exchange, ended by its waker
    deadline_queue* deadlines_ = nullptr;   // the io thread's, looked up on the first deadline
    clock::time_point read_until_ = clock::time_point::max(), write_until_ = clock::time_point::max();

    bool tunnel_ = false;          // the client asked to upgrade
    bool safe_ = false;            // idempotent, no body: may be sent twice
    bool reused_ = false;          // this attempt's connection came from the pool
    bool upload_done_ = false;     // the whole request is upstream
    bool upload_failed_ = false;   // the upstream stopped taking the request
    bool reading_ = false;         // a response read is pending
    bool timed_out_ = false;
    bool client_failed_ = false;   // the client left or its body failed
    bool stopped_ = false;         // the response is complete: stop uploading
    bool finished_ = false;
    unsigned error_status_ = 502;
    std::string error_text_ = "The upstream server could not be reached.";
};

asio::awaitable<void> call::run() {
    install_waker();
    const net::request_head& h = ex_->head();
    if (h.method == "CONNECT") {
        answer(405, "CONNECT is not relayed by a proxy mount.");
        co_return;
    }
    if (h.target != "*" && has_dot_segment(h)) {
        answer(400, "The path has a '.' or '..' segment.");
        co_return;
    }
    tunnel_ = upgrade_allowed(h, m_->opt.upgrades);   // any other Upgrade goes as a plain request
    safe_ = idempotent(h.method) && !h.has_body();
    std::vector<bool> tried(m_->upstreams.size());
    std::optional<std::size_t> idx;
    bool fresh = false;
    // Each upstream at most twice (once more on a fresh connection).
    for (std::size_t n = 0; n < 2 * tried.size(); ++n) {
        if (!idx) idx = m_->bal.pick(clock::now(), tried);
        if (!idx) break;
        outcome o = co_await attempt(*idx, fresh);
        if (o == outcome::done) co_return;
        if (o == outcome::failed) break;
        if (o == outcome::retry_fresh) {
            fresh = true;
            continue;
        }
        tried[*idx] = true;
        idx.reset();
        fresh = false;
    }
    answer(error_status_, error_text_);
}

asio::awaitable<outcome> call::attempt(std::size_t idx, bool fresh) {
    const upstream& u = m_->upstreams[idx];
    const net::request_head& h = ex_->head();
    close_upstream();   // what an earlier attempt left open
    timed_out_ = false;
    upload_failed_ = false;
    reused_ = false;
    if (!fresh) {
        if (auto s = conn_pool::of(u.pool_id, m_->opt.max_idle).take(!safe_)) {
            sock_ = std::move(*s);
            reused_ = true;
        }
    }
    if (!reused_) {
        error_code ec = co_await connect(u);
        if (client_failed_) co_return client_left();
        if (ec) {
            if (ec == asio::error::timed_out)
                note_failure(idx, 504, "The upstream server did not accept the connection in time.", "connect timed out");
            else
                note_failure(idx, 502, "The upstream server could not be reached.", "connect: " + ec.message());
            co_return outcome::retry_next;   // nothing was sent: any request may go elsewhere
        }
    }

    forward_options fo;
    fo.prefix = m_->prefix;
    fo.prefix_replaced = u.url.path.has_value();
    fo.upstream_host = u.url.authority;
    fo.preserve_host = m_->opt.preserve_host;
    fo.tunnel = tunnel_;
    fo.close = m_->opt.max_idle == 0 && !tunnel_;
    fo.rfc7239 = m_->ctx.trusted.family() == net::forwarded_family::forwarded;
    std::string out = upstream_request_head(h, ex_->endpoint(), *upstream_target(h, u.url.path), fo);
    upload_done_ = !h.has_body();
    if (!upload_done_) take_ready_body(out);   // a body already here rides with the head

    // A request head fits the socket's send buffer nearly always: written
    // at once, it costs no deadline timer and no trip through the scheduler.
    // What does not fit goes the asynchronous way, under the deadline.
    error_code ec;
    std::size_t sent = 0;
    if (!sock_.non_blocking()) sock_.non_blocking(true, ec);
    if (!ec) sent = sock_.write_some(asio::buffer(out), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
    if (!ec && sent < out.size()) {
        arm(deadline::write, m_->opt.read_timeout);
        auto [wec, n] = co_await asio::async_write(sock_, asio::buffer(out) + sent, use_tuple);
        disarm(deadline::write);
        ec = wec;
    }
    if (client_failed_) co_return client_left();
    if (ec) upload_failed_ = true;   // an answer it sent before closing may still be readable
    else if (!upload_done_) asio::co_spawn(sock_.get_executor(), upload(shared_from_this()), asio::detached);
    co_return co_await relay(idx);
}

asio::awaitable<error_code> call::connect(const upstream& u) {
    error_code ec = asio::error::host_not_found;
    auto until = clock::now() + m_->opt.connect_timeout;
    for (const auto& ep : u.endpoints) {
        auto left = until - clock::now();
        if (left <= clock::duration::zero()) {
            ec = asio::error::timed_out;
            break;
        }
        close_upstream();
        timed_out_ = false;
        // Opened here, close-on-exec, rather than by async_connect.
        error_code oec;
        net::open_cloexec(sock_, ep.protocol(), oec);
        if (oec) {
            ec = oec;
            continue;
        }
        arm(deadline::write, left);
        auto [cec] = co_await sock_.async_connect(ep, use_tuple);
        disarm(deadline::write);
        if (!cec && sock_.is_open()) {
            error_code ignored;
            sock_.set_option(tcp::no_delay(true), ignored);
            co_return error_code{};
        }
        ec = timed_out_ ? error_code(asio::error::timed_out) : cec;
        if (timed_out_ || client_failed_) break;
    }
    co_return ec;
}

void call::take_ready_body(std::string& out) {
    std::string chunk;
    std::size_t taken = 0;
    while (taken < io_chunk) {
        chunk.resize(io_chunk - taken);
        auto got = ex_->try_read(chunk.data(), chunk.size());
        if (!got) return;
        chunk.resize(*got);
        frame_body(out, chunk, ex_->head().chunked, *got == 0);
        if (*got == 0) {
            upload_done_ = true;
            return;
        }
        taken += *got;
    }
}

asio::awaitable<void> call::upload(std::shared_ptr<call> self) {
    std::string chunk, framed;
    while (!upload_done_ && !stopped_ && !client_failed_ && !upload_failed_) {
        chunk.resize(io_chunk);
        auto got = ex_->try_read(chunk.data(), chunk.size());
        if (!got) {
            if (ex_->client_gone() || ex_->body_error_status()) {
                client_failed();
                co_return;
            }
            ex_->request_body();
            co_await wait(body_timer_);
            continue;
        }
        chunk.resize(*got);
        framed.clear();
        frame_body(framed, chunk, ex_->head().chunked, *got == 0);
        if (!framed.empty()) {
            arm(deadline::write, m_->opt.read_timeout);
            auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(framed), use_tuple);
            disarm(deadline::write);
            if (ec) {
                upload_failed_ = true;
                co_return;
            }
        }
        if (*got == 0) {
            upload_done_ = true;
            // The upstream's silence counts from the end of the request.
            if (reading_) arm(deadline::read, m_->opt.read_timeout);
        }
    }
}

// A read of the upstream, awaited in place (not a coroutine of its own,
// which would cost a frame per read); read_ended() takes its error.
auto call::read_upstream(read_buffer& buf) {
    reading_ = true;
    if (upload_done_ || upload_failed_) arm(deadline::read, m_->opt.read_timeout);
    return sock_.async_read_some(buf.prepare(io_chunk), use_tuple);
}

error_code call::read_ended(error_code ec) {
    reading_ = false;
    disarm(deadline::read);
    if (ec && timed_out_) ec = asio::error::timed_out;
    return ec;
}

asio::awaitable<outcome> call::relay(std::size_t idx) {
    const net::request_head& h = ex_->head();
    read_buffer buf;
    std::optional<response_parser> p;
    p.emplace(max_response_head, h.head_method);
    p->eager(true);   // a body that came with the head goes out with it
    bool any = false;

    // The head, after any interim (1xx) responses, which are not passed on.
    for (;;) {
        if (buf.size() > 0) {
            error_code ec;
            std::size_t n = p->put(buf.data(), ec);
            buf.consume(n);
            if (ec && ec != http::error::need_more) {
                close_upstream();
                note_failure(idx, 502, "The upstream server sent an invalid response.", "bad response head: " + ec.message());
                co_return outcome::failed;
            }
            if (p->is_header_done()) {
                if (p->status() >= 200 || p->status() == 101) break;
                p.emplace(max_response_head, h.head_method);
                p->eager(true);
                continue;
            }
            if (n > 0) continue;
            p->detach();   // the next read may move what the fields point into
        }
        auto [rec, n] = co_await read_upstream(buf);
        error_code ec = read_ended(rec);
        if (client_failed_) co_return client_left();
        if (ec) {
            close_upstream();
            if (ec == asio::error::timed_out) {
                note_failure(idx, 504, "The upstream server did not answer in time.", "read timed out");
                co_return outcome::failed;
            }
            // A kept connection the upstream closed just as it was reused:
            // the request, if it can be sent twice, goes again on a new one.
            if (!any && safe_ && reused_) co_return outcome::retry_fresh;
            note_failure(idx, 502,
                         any ? "The upstream server closed the connection before a complete response head."
                             : "The upstream server closed the connection without a response.",
                         (reused_ ? "kept connection: " : "") + ec.message());
            co_return !any && safe_ ? outcome::retry_next : outcome::failed;
        }
        any = true;
        buf.commit(n);
    }

    m_->bal.succeeded(idx);
    if (p->status() == 101) co_return switch_protocols(idx, *p, buf);

    unsigned status = p->status();
    std::optional<std::uint64_t> declared;
    if (!p->chunked()) {
        if (auto cl = p->content_length()) declared = *cl;
    }
    std::string line = std::to_string(status);
    line += ' ';
    line += p->reason().empty() ? net::reason_phrase(status) : p->reason();
    w_.set_head(status, line, client_response_fields(p->fields()), declared);
    w_.emit_head(std::nullopt);

    bool eof = false;
    for (;;) {
        std::string& sink = p->body_sink();
        if (!sink.empty()) {
            w_.append_body(sink);
            sink.clear();
        }
        if (p->is_done()) break;   // the rest goes with the completion
        if (!co_await flush()) co_return client_left();
        if (buf.size() > 0) {
            error_code ec;
            std::size_t n = p->put(buf.data(), ec);
            buf.consume(n);
            if (ec && ec != http::error::need_more) co_return truncated(idx, "bad response body: " + ec.message());
            if (n > 0) continue;
        }
        auto [rec, n] = co_await read_upstream(buf);
        error_code ec = read_ended(rec);
        if (client_failed_) co_return client_left();
        if (ec == asio::error::eof) {
            error_code eec;
            p->put_eof(eec);
            if (eec || !p->is_done()) co_return truncated(idx, "the connection closed mid-body");
            eof = true;   // a close-delimited body ended
            continue;
        }
        if (ec) co_return truncated(idx, ec == asio::error::timed_out ? "read timed out mid-body" : ec.message());
        buf.commit(n);
    }
    w_.end_body();
    finished_ = true;
    w_.finish(false);   // the last bytes go with the completion
    release(idx, p->keep_alive() && !eof && buf.size() == 0);
    co_return outcome::done;
}

outcome call::switch_protocols(std::size_t idx, response_parser& p, read_buffer& buf) {
    auto upgrade = p.find("upgrade");
    if (!tunnel_ || !upload_done_ || upload_failed_ || !upgrade) {
        close_upstream();
        note_failure(idx, 502, "The upstream server switched protocols unasked.", "unexpected 101");
        return outcome::failed;
    }
    if (m_->ctx.draining.load(std::memory_order_relaxed)) {
        // A tunnel opened now would be closed at once by the drain.
        close_upstream();
        answer(503, "The server is shutting down.");
        return outcome::done;
    }
    std::string fields = client_response_fields(p.fields());
    fields += "Connection: upgrade\r\nUpgrade: ";
    fields += *upgrade;
    fields += "\r\n";
    std::string line = "101 ";
    line += p.reason().empty() ? std::string_view("Switching Protocols") : p.reason();
    w_.set_head(101, line, std::move(fields), std::nullopt);
    w_.emit_head(std::nullopt);
    // The upstream end waits for the connection's handler::tunnel() call,
    // which follows this response on the same io thread.
    auto bytes = buf.data();
    stash_upgrade(ex_.get(), {std::move(sock_), std::string(static_cast<const char*>(bytes.data()), bytes.size())});
    finished_ = true;
    w_.finish(false);
    return outcome::done;
}

asio::awaitable<bool> call::flush() {
    std::string& out = w_.out();
    while (!out.empty()) {
        auto r = ex_->try_write(out);
        if (r == net::app_port::write_result::ok) break;
        if (r == net::app_port::write_result::gone) {
            out.clear();
            co_return false;
        }
        co_await wait(out_timer_);   // above the high-water mark: until the client drains it
    }
    co_return !client_failed_;
}

asio::awaitable<void> call::wait(timer_slot& t) {
    if (!t) t.emplace(ex_->io_executor());
    t->expires_at(clock::time_point::max());
    co_await t->async_wait(use_tuple);
}

void call::cancel(timer_slot& t) {
    if (t) t->cancel();
}

void call::note_failure(std::size_t idx, unsigned status, std::string text, const std::string& detail) {
    // A connection kept from earlier failing is no sign of a dead upstream.
    if (!reused_) m_->bal.failed(idx, clock::now());
    log_upstream(idx, detail);
    error_status_ = status;
    error_text_ = std::move(text);
}

outcome call::truncated(std::size_t idx, const std::string& detail) {
    // The head is out: the client can only learn of it by the connection
    // closing before the body is complete (no last chunk is sent).
    log_upstream(idx, detail + "; closing the client connection");
    close_upstream();
    finished_ = true;
    w_.abandon();
    w_.finish(false);
    return outcome::done;
}

outcome call::client_left() {
    close_upstream();   // half a request or an unread response: not reusable
    stopped_ = true;
    cancel(body_timer_);
    finished_ = true;
    unsigned body_status = ex_->body_error_status();
    if (!ex_->client_gone() && body_status && !w_.head_emitted()) {
        w_.error_response(body_status);   // 413, 408, 400: the body could not be read
        w_.finish(false);
    } else {
        w_.abandon();
        w_.finish(ex_->client_gone());
    }
    return outcome::done;
}

void call::answer(unsigned status, const std::string& text) {
    finished_ = true;
    close_upstream();
    stopped_ = true;
    cancel(body_timer_);
    if (w_.head_emitted()) {
        w_.abandon();
        w_.finish(false);
        return;
    }
    std::string body = std::to_string(status) + " " + std::string(net::reason_phrase(status)) + "\n" + text + "\n";
    w_.set_head(status, std::to_string(status) + " " + std::string(net::reason_phrase(status)),
                "Content-Type: text/plain; charset=utf-8\r\n", body.size());
    w_.emit_head(std::nullopt);
    w_.append_body(body);
    w_.end_body();
    w_.finish(false);
}

void call::release(std::size_t idx, bool reusable) {
    if (!upload_done_) {
        // Answered before the whole request was sent: the rest of it would
        // be read as the next request.
        stopped_ = true;
        cancel(body_timer_);
        reusable = false;
    }
    if (reusable && !upload_failed_ && !client_failed_ && !timed_out_ && sock_.is_open())
        conn_pool::of(m_->upstreams[idx].pool_id, m_->opt.max_idle).put(std::move(sock_));
    else
        close_upstream();
}

void call::client_failed() {
    if (client_failed_) return;
    client_failed_ = true;
    close_upstream();   // ends a pending upstream read or write
}

void call::on_event() {
    cancel(body_timer_);
    cancel(out_timer_);
    if (!finished_ && ex_->client_gone()) client_failed();
}

void call::install_waker() {
    auto io = ex_->io_executor();
    ex_->set_app_waker([w = weak_from_this(), io] {
        // io thread, exchange lock held: only hand off.
        asio::post(io, [w] {
            if (auto self = w.lock()) self->on_event();
        });
    });
}

void call::arm(deadline d, clock::duration dur) {
    auto at = clock::now() + dur;
    (d == deadline::read ? read_until_ : write_until_) = at;
    if (!pending() || at < this->at()) wait_deadline(at);
}

void call::disarm(deadline d) {
    (d == deadline::read ? read_until_ : write_until_) = clock::time_point::max();
}

void call::wait_deadline(clock::time_point at) {
    if (!deadlines_) deadlines_ = &deadline_queue::of(ex_->io_executor());
    deadlines_->schedule(*this, at, ex_->io_executor());
}

void call::expired() {
    // The queue holds no owner: a call that ended has unlinked itself.
    auto now = clock::now();
    if (read_until_ <= now || write_until_ <= now) {
        timed_out_ = true;
        close_upstream();
        return;
    }
    auto next = std::min(read_until_, write_until_);
    if (next != clock::time_point::max()) wait_deadline(next);
}

void call::close_upstream() {
    error_code ec;
    sock_.close(ec);
}

void call::log_upstream(std::size_t idx, const std::string& what) const {
    const auto& h = ex_->head();
    log::warning("proxy " + (m_->prefix.empty() ? std::string("/") : m_->prefix) + " -> " +
                 m_->upstreams[idx].url.authority + ": " + h.method + " " + h.target + ": " + what);
}

} // namespace

void start_call(std::shared_ptr<net::app_port> ex, std::shared_ptr<mount_state> m) {
    auto c = std::make_shared<call>(ex, std::move(m));
    asio::co_spawn(ex->io_executor(), c->run(), [c](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& x) {
            log::error(std::string("proxy call failed: ") + x.what());
        }
        // The writer, destroyed with the call, ends the exchange.
    });
}

} // namespace trestle::proxy
