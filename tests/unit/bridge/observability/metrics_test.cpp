// The metrics registry: counts from several threads summed at a scrape,
// what an exited thread counted kept, the latency buckets cumulative with
// their bounds, in flight as started minus finished, label values escaped,
// and values read at scrape time.
#include "bridge/observability/metrics.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace trestle::metrics {
namespace {

bool has_line(const std::string& text, const std::string& line) {
    return text.find("\n" + line + "\n") != std::string::npos || text.starts_with(line + "\n");
}

TEST(metrics, counts_of_several_threads_are_summed_and_kept_after_they_exit) {
    registry r;
    std::uint16_t m = r.add_mount("/api", "wsgi");
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                r.request_started(m);
                r.request_finished(m, i % 10 == 0 ? 500 : 200, 2'000'000, 10, 100);   // 2 ms
            }
        });
    for (auto& t : threads) t.join();   // their cells are folded into the registry's totals
    r.request_started(m);                // one still in flight, on this thread
    std::string text = r.render();
    const std::string l = "mount=\"/api\",interface=\"wsgi\"";
    EXPECT_TRUE(has_line(text, "trestle_requests_total{" + l + ",code=\"2xx\"} 3600")) << text;
    EXPECT_TRUE(has_line(text, "trestle_requests_total{" + l + ",code=\"5xx\"} 400"));
    EXPECT_TRUE(has_line(text, "trestle_requests_in_flight{" + l + "} 1"));
    EXPECT_TRUE(has_line(text, "trestle_request_duration_seconds_bucket{" + l + ",le=\"0.001\"} 0"));
    EXPECT_TRUE(has_line(text, "trestle_request_duration_seconds_bucket{" + l + ",le=\"0.0025\"} 4000"));
    EXPECT_TRUE(has_line(text, "trestle_request_duration_seconds_bucket{" + l + ",le=\"+Inf\"} 4000"));
    EXPECT_TRUE(has_line(text, "trestle_request_duration_seconds_count{" + l + "} 4000"));
    EXPECT_TRUE(has_line(text, "trestle_request_duration_seconds_sum{" + l + "} 8"));
    EXPECT_TRUE(has_line(text, "trestle_request_body_bytes_total{" + l + "} 40000"));
    EXPECT_TRUE(has_line(text, "trestle_response_body_bytes_total{" + l + "} 400000"));
}

TEST(metrics, a_request_answered_before_any_app_is_started_and_finished_at_once) {
    registry r;
    std::uint16_t m = r.add_mount("", "asgi");
    r.request_finished(m, 503, 0, 0, 0, false);
    r.request_shed(m);
    std::string text = r.render();
    const std::string l = "mount=\"/\",interface=\"asgi\"";
    EXPECT_TRUE(has_line(text, "trestle_requests_in_flight{" + l + "} 0")) << text;
    EXPECT_TRUE(has_line(text, "trestle_requests_shed_total{" + l + "} 1"));
    EXPECT_TRUE(has_line(text, "trestle_requests_total{" + l + ",code=\"5xx\"} 1"));
    // Mount 0 (no mount took the request) shows only once it has seen one.
    EXPECT_EQ(text.find("interface=\"none\""), std::string::npos);
    r.request_finished(0, 404, 0, 0, 0, false);
    EXPECT_NE(r.render().find("mount=\"/\",interface=\"none\",code=\"4xx\"} 1"), std::string::npos);
}

TEST(metrics, values_are_read_at_each_scrape_and_labels_escaped) {
    registry r;
    r.add_mount("/a\"b\\c", "static");
    double v = 3;
    r.add_value("trestle_test_gauge", "A test.", "gauge", "", [&] { return v; });
    EXPECT_TRUE(has_line(r.render(), "trestle_test_gauge 3"));
    v = 4.5;
    std::string text = r.render();
    EXPECT_TRUE(has_line(text, "trestle_test_gauge 4.5"));
    EXPECT_TRUE(has_line(text, "# TYPE trestle_test_gauge gauge"));
    EXPECT_NE(text.find("mount=\"/a\\\"b\\\\c\""), std::string::npos) << text;
    EXPECT_EQ(label_value("x\ny"), "x\\ny");
}

TEST(metrics, a_thread_that_outlives_its_registry_leaves_it_alone) {
    auto r = std::make_unique<registry>();
    std::uint16_t m = r->add_mount("/", "wsgi");
    std::atomic<int> step{0};
    std::thread t([&] {
        r->request_finished(m, 200, 1, 0, 0, false);
        step = 1;
        while (step.load() != 2) std::this_thread::yield();
    });
    while (step.load() != 1) std::this_thread::yield();
    r.reset();   // the thread's cells go with it
    registry again;   // may reuse the address: the thread must not take it for the old one
    step = 2;
    t.join();   // its exit must not touch either registry's cells
    EXPECT_EQ(again.render().find("code=\"2xx\"} 1"), std::string::npos);
}

} // namespace
} // namespace trestle::metrics
