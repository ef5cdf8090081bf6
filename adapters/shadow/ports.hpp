#pragma once
// The two app ports of shadow mode (see mirror.hpp).
//
// tee_port stands between the primary handler and its real exchange: every
// call goes through, and on the way it copies the request body the app reads
// and the response bytes it writes. At finish the client's answer goes out
// first; then the copies go to the mirror, which replays them.
//
// replay_port is an exchange in memory for the shadow handler: the copied
// head and body to read, writes that never block and are captured, no
// socket. Cut at shadow_timeout as a request is at --timeout (the client
// treated as gone, the WSGI watchdog told), so a stuck shadow frees its
// slot once its app returns. It holds its slot until it is destroyed.
#include "adapters/shadow/capture.hpp"
#include "bridge/net/app_port.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace trestle::shadow {

class mirror;
struct trial;

// A slot of the mirror's queue, held while a replay is on its way.
class slot {
public:
    slot() = default;
    explicit slot(std::shared_ptr<mirror> m) : m_(std::move(m)) {}
    slot(slot&&) noexcept = default;
    slot& operator=(slot&&) noexcept = default;
    ~slot();
    explicit operator bool() const { return m_ != nullptr; }
    mirror& owner() const { return *m_; }
    const std::shared_ptr<mirror>& share() const { return m_; }

private:
    std::shared_ptr<mirror> m_;
};

class tee_port final : public net::app_port {
public:
    tee_port(std::shared_ptr<net::app_port> inner, slot s, std::size_t cap);

    const net::request_head& head() const override { return inner_->head(); }
    const net::endpoint_info& endpoint() const override { return inner_->endpoint(); }
    const boost::asio::any_io_executor& io_executor() const override { return inner_->io_executor(); }
    std::optional<std::size_t> try_read(char* dst, std::size_t n) override;
    std::optional<std::size_t> read(char* dst, std::size_t n) override;
    void cancel_reads() override { inner_->cancel_reads(); }
    bool body_consumed() override { return inner_->body_consumed(); }
    void request_body() override { inner_->request_body(); }
    unsigned body_error_status() override { return inner_->body_error_status(); }
    write_result try_write(std::string& bytes) override;
    bool write(std::string& bytes) override;
    bool send_file(net::file_job job) override;
    void queue_file(net::file_job job) override;
    void finish(bool keep_alive, std::string& last) override;
    bool client_gone() override { return inner_->client_gone(); }
    bool output_started() override { return inner_->output_started(); }
    void set_app_waker(std::function<void()> waker) override { inner_->set_app_waker(std::move(waker)); }
    void set_status(unsigned status) override { inner_->set_status(status); }
    void add_body_bytes(std::uint64_t n) override { inner_->add_body_bytes(n); }
    void set_response_head(std::string_view lines) override { inner_->set_response_head(lines); }
    void count_as_async_view() override { inner_->count_as_async_view(); }
    void arm_timeout(std::chrono::steady_clock::time_point deadline, net::timeout_listener* l = nullptr,
                     void* tag = nullptr) override;
    bool timed_out() const override { return inner_->timed_out(); }

private:
    void copy_body(const char* p, std::optional<std::size_t> n);

    std::shared_ptr<net::app_port> inner_;
    slot slot_;
    std::size_t cap_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    // Only the app's thread calls the methods that touch these (one call at
    // a time: an app side is one thread of control), except that WSGI may
    // read wsgi.input from threads of its own; the lock covers that.
    std::mutex m_;
    std::string body_;
    bool body_too_large_ = false;
    response_capture out_;
    std::size_t seen_ahead_ = 0;   // bytes of a refused try_write already fed to out_
};

class replay_port final : public net::app_port {
public:
    replay_port(net::request_head head, net::endpoint_info ep, std::string body, boost::asio::any_io_executor io,
                std::size_t cap, std::unique_ptr<trial> t, slot s);
    ~replay_port();

    const net::request_head& head() const override { return head_; }
    const net::endpoint_info& endpoint() const override { return endpoint_; }
    const boost::asio::any_io_executor& io_executor() const override { return io_; }
    std::optional<std::size_t> try_read(char* dst, std::size_t n) override;
    std::optional<std::size_t> read(char* dst, std::size_t n) override { return try_read(dst, n); }
    void cancel_reads() override;
    bool body_consumed() override;
    void request_body() override {}
    unsigned body_error_status() override { return 0; }
    write_result try_write(std::string& bytes) override;
    bool write(std::string& bytes) override { return try_write(bytes) == write_result::ok; }
    bool send_file(net::file_job job) override;
    void queue_file(net::file_job job) override { send_file(std::move(job)); }
    void finish(bool keep_alive, std::string& last) override;
    bool client_gone() override;
    bool output_started() override;
    void set_app_waker(std::function<void()> waker) override;
    void set_status(unsigned) override {}
    void add_body_bytes(std::uint64_t) override {}
    void set_response_head(std::string_view) override {}
    void arm_timeout(std::chrono::steady_clock::time_point deadline, net::timeout_listener* l = nullptr,
                     void* tag = nullptr) override;
    bool timed_out() const override;

    // The judge thread, at shadow_timeout: the app is treated as cut off,
    // and its (late) answer is judged as a timeout.
    void time_out();
    // The shadow handler refused the request (its pool or loop is full).
    void refused();
    // Handed to the shadow handler now (its time starts).
    void launched();

private:
    void deliver_locked(bool timed_out);

    net::endpoint_info endpoint_;
    boost::asio::any_io_executor io_;
    std::string body_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    mutable std::mutex m_;
    std::size_t body_pos_ = 0;
    bool reads_cancelled_ = false;
    bool gone_ = false;
    bool delivered_ = false;
    bool started_output_ = false;
    response_capture out_;
    std::unique_ptr<trial> trial_;   // handed to the judge once, with a copy of head_
    net::request_head head_;
    std::function<void()> waker_;
    net::timeout_listener* listener_ = nullptr;
    void* tag_ = nullptr;
    slot slot_;
};

} // namespace trestle::shadow
