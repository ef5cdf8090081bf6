#include "bridge/net/forwarded.hpp"

#include <gtest/gtest.h>

using trestle::net::apply_forwarded;
using trestle::net::endpoint_info;
using trestle::net::request_head;
using trestle::net::trusted_proxies;
constexpr auto rfc7239 = trestle::net::forwarded_family::forwarded;

namespace {

trusted_proxies make(std::vector<std::string> entries,
                     trestle::net::forwarded_family family = trestle::net::forwarded_family::x_forwarded) {
    trusted_proxies t;
    t.set_family(family);
    std::string why;
    EXPECT_TRUE(t.parse(entries, why)) << why;
    return t;
}

endpoint_info peer(std::string addr) {
    endpoint_info ep;
    ep.remote_addr = ep.peer_addr = addr;
    ep.remote_port = "40000";
    ep.trusted_peer = true;
    return ep;
}

request_head with(std::vector<std::pair<std::string, std::string>> fields) {
    request_head h;
    for (auto& [n, v] : fields) h.headers.push_back({n, v, 0});
    return h;
}

} // namespace

TEST(TrustedProxies, ParsesAddressesAndCidrs) {
    auto t = make({"127.0.0.1", "10.0.0.0/8", "fd00::/8", "::1"});
    EXPECT_TRUE(t.contains("127.0.0.1"));
    EXPECT_FALSE(t.contains("127.0.0.2"));
    EXPECT_TRUE(t.contains("10.255.1.2"));
    EXPECT_FALSE(t.contains("11.0.0.1"));
    EXPECT_TRUE(t.contains("fd12:3456::1"));
    EXPECT_FALSE(t.contains("fe80::1"));
    EXPECT_TRUE(t.contains("::1"));
    EXPECT_TRUE(t.contains("::ffff:10.1.2.3"));   // IPv4 seen on a dual-stack socket
    EXPECT_FALSE(t.contains("not-an-ip"));
    EXPECT_FALSE(t.contains(""));
}

TEST(TrustedProxies, OddPrefixLengths) {
    auto t = make({"192.168.4.0/22"});
    EXPECT_TRUE(t.contains("192.168.7.255"));
    EXPECT_FALSE(t.contains("192.168.8.0"));
    EXPECT_FALSE(t.contains("192.168.3.255"));
    auto all = make({"0.0.0.0/0"});
    EXPECT_TRUE(all.contains("8.8.8.8"));
    EXPECT_FALSE(all.contains("2001:db8::1"));
}

TEST(TrustedProxies, RejectsBadEntries) {
    for (std::string bad : {"10.0.0.0/33", "::1/129", "10.0.0.0/", "10.0.0", "host.example", "1.2.3.4/8x", "/8"}) {
        trusted_proxies t;
        std::string why;
        EXPECT_FALSE(t.parse({bad}, why)) << bad;
        EXPECT_NE(why.find(bad), std::string::npos) << why;
    }
}

TEST(TrustedProxies, StarAndUnix) {
    auto star = make({"*"});
    endpoint_info unix_peer;
    unix_peer.is_unix = true;
    EXPECT_TRUE(star.contains("203.0.113.9"));
    EXPECT_TRUE(star.trusts(unix_peer));
    auto unix_only = make({"unix"});
    EXPECT_TRUE(unix_only.trusts(unix_peer));
    EXPECT_FALSE(unix_only.trusts(peer("127.0.0.1")));
    auto none = make({"127.0.0.1"});
    EXPECT_FALSE(none.trusts(unix_peer));
}

TEST(ApplyForwarded, XForwardedForAndProto) {
    auto t = make({"127.0.0.1"});
    auto ep = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "203.0.113.7"}, {"X-Forwarded-Proto", "https"}}), t, ep);
    EXPECT_EQ(ep.remote_addr, "203.0.113.7");
    EXPECT_EQ(ep.remote_port, "0");
    EXPECT_EQ(ep.scheme, "https");
    EXPECT_EQ(ep.peer_addr, "127.0.0.1");
}

TEST(ApplyForwarded, RightmostUntrustedHopIsTheClient) {
    auto t = make({"127.0.0.1", "10.0.0.0/8"});
    auto ep = peer("127.0.0.1");
    // The client wrote "1.1.1.1" itself; 198.51.100.2 is what the first
    // trusted proxy saw; 10.0.0.5 is a trusted proxy in between.
    apply_forwarded(with({{"X-Forwarded-For", "1.1.1.1, 198.51.100.2, 10.0.0.5"}}), t, ep);
    EXPECT_EQ(ep.remote_addr, "198.51.100.2");
    EXPECT_EQ(ep.scheme, "http");
}

TEST(ApplyForwarded, RepeatedFieldsConcatenate) {
    auto t = make({"127.0.0.1", "10.0.0.5"});
    auto ep = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "198.51.100.2"}, {"x-forwarded-for", "10.0.0.5"}}), t, ep);
    EXPECT_EQ(ep.remote_addr, "198.51.100.2");
}

TEST(ApplyForwarded, AllTrustedTakesTheLeftmost) {
    auto t = make({"10.0.0.0/8"});
    auto ep = peer("10.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "10.0.0.9, 10.0.0.8"}}), t, ep);
    EXPECT_EQ(ep.remote_addr, "10.0.0.9");
}

TEST(ApplyForwarded, ForwardedIsReadOnlyWhenChosen) {
    auto fields = with({{"X-Forwarded-For", "9.9.9.9"},
                        {"Forwarded", "for=\"[2001:db8:cafe::17]:4711\";proto=https;by=10.0.0.1"}});
    auto ep = peer("127.0.0.1");
    apply_forwarded(fields, make({"127.0.0.1"}), ep);
    EXPECT_EQ(ep.remote_addr, "9.9.9.9");
    EXPECT_EQ(ep.scheme, "http");
    auto ep2 = peer("127.0.0.1");
    apply_forwarded(fields, make({"127.0.0.1"}, rfc7239), ep2);
    EXPECT_EQ(ep2.remote_addr, "2001:db8:cafe::17");
    EXPECT_EQ(ep2.remote_port, "4711");
    EXPECT_EQ(ep2.scheme, "https");
}

// Issue 10 item 2: nginx appends to X-Forwarded-For and sets
// X-Forwarded-Proto, and passes a client's Forwarded on untouched.
TEST(ApplyForwarded, AClientsForwardedDoesNotBeatTheProxysXForwarded) {
    auto ep = peer("127.0.0.1");
    apply_forwarded(with({{"Forwarded", "for=6.6.6.6;proto=https"}, {"X-Forwarded-For", "6.6.6.6, 198.51.100.2"},
                          {"X-Forwarded-Proto", "http"}}),
                    make({"127.0.0.1"}), ep);
    EXPECT_EQ(ep.remote_addr, "198.51.100.2");
    EXPECT_EQ(ep.scheme, "http");
    // And the other way round: in Forwarded mode a client's X-Forwarded-*
    // is not read.
    auto ep2 = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "6.6.6.6"}, {"X-Forwarded-Proto", "https"},
                          {"Forwarded", "for=198.51.100.2;proto=http"}}),
                    make({"127.0.0.1"}, rfc7239), ep2);
    EXPECT_EQ(ep2.remote_addr, "198.51.100.2");
    EXPECT_EQ(ep2.scheme, "http");
    auto ep3 = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "6.6.6.6"}, {"X-Forwarded-Proto", "https"}}),
                    make({"127.0.0.1"}, rfc7239), ep3);
    EXPECT_EQ(ep3.remote_addr, "127.0.0.1");
    EXPECT_EQ(ep3.scheme, "http");
}

TEST(ApplyForwarded, ProtoListsOfOtherLengthsGiveOnlyTheRightmost) {
    auto t = make({"127.0.0.1"});
    auto ep = peer("127.0.0.1");
    // The client sent "https"; the proxy appended its own "http".
    apply_forwarded(with({{"X-Forwarded-For", "198.51.100.2"}, {"X-Forwarded-Proto", "https, http"}}), t, ep);
    EXPECT_EQ(ep.remote_addr, "198.51.100.2");
    EXPECT_EQ(ep.scheme, "http");
    auto ep2 = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "6.6.6.6, 198.51.100.2"}, {"X-Forwarded-Proto", "https"}}), t, ep2);
    EXPECT_EQ(ep2.scheme, "https");   // one entry: the proxy's own (it replaces the field)
}

TEST(ApplyForwarded, ProtoListsInStepGiveTheChosenHops) {
    auto t = make({"127.0.0.1", "10.0.0.0/8"});
    auto ep = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "1.1.1.1, 198.51.100.2, 10.0.0.5"},
                          {"X-Forwarded-Proto", "http, https, http"}}),
                    t, ep);
    EXPECT_EQ(ep.remote_addr, "198.51.100.2");
    EXPECT_EQ(ep.scheme, "https");
}

TEST(ApplyForwarded, ForwardedChainAndUnknownNode) {
    auto t = make({"127.0.0.1", "192.0.2.43"}, rfc7239);
    auto ep = peer("127.0.0.1");
    apply_forwarded(with({{"Forwarded", "for=192.0.2.60;proto=http, for=192.0.2.43;proto=https"}}), t, ep);
    EXPECT_EQ(ep.remote_addr, "192.0.2.60");
    EXPECT_EQ(ep.scheme, "http");
    auto ep2 = peer("127.0.0.1");
    apply_forwarded(with({{"Forwarded", "for=unknown;proto=https"}}), t, ep2);
    EXPECT_EQ(ep2.remote_addr, "127.0.0.1");   // not an address: the peer stays
    EXPECT_EQ(ep2.scheme, "https");
}

TEST(ApplyForwarded, GarbageChangesNothingDangerous) {
    auto t = make({"127.0.0.1"});
    auto ep = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "<script>, "}, {"X-Forwarded-Proto", "gopher"}}), t, ep);
    EXPECT_EQ(ep.remote_addr, "127.0.0.1");
    EXPECT_EQ(ep.scheme, "http");
    auto ep2 = peer("127.0.0.1");
    apply_forwarded(with({{"Forwarded", "for"}}), make({"127.0.0.1"}, rfc7239), ep2);
    EXPECT_EQ(ep2.remote_addr, "127.0.0.1");
}

TEST(ApplyForwarded, ProtoAlone) {
    auto t = make({"127.0.0.1"});
    auto ep = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-Proto", "HTTPS"}}), t, ep);
    EXPECT_EQ(ep.scheme, "https");
    EXPECT_EQ(ep.remote_addr, "127.0.0.1");
}

TEST(ApplyForwarded, PortForms) {
    auto t = make({"127.0.0.1"});
    auto ep = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "198.51.100.2:5555"}}), t, ep);
    EXPECT_EQ(ep.remote_addr, "198.51.100.2");
    EXPECT_EQ(ep.remote_port, "5555");
    auto ep6 = peer("127.0.0.1");
    apply_forwarded(with({{"X-Forwarded-For", "2001:db8::2"}}), t, ep6);
    EXPECT_EQ(ep6.remote_addr, "2001:db8::2");
    EXPECT_EQ(ep6.remote_port, "0");
}
