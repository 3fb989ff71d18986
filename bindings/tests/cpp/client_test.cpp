// Drives the C++ RAII layer (bindings/cpp/concordkv_topology.hpp) against a real
// server; run by tests/integration/client/native.rs with the same line protocol as
// the C test: "ROUTE key shard epoch primary address replicas...", "READY version
// hash", then reads "WAIT version" from stdin, prints "EVENT ..." lines, "DONE".
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "concordkv_topology.hpp"

#define ASSERT(cond)                                                                  \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::cerr << __FILE__ << ":" << __LINE__ << ": assertion failed: " #cond \
                      << std::endl;                                                   \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

using namespace std::chrono_literals;

int main(int argc, char **argv) {
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " SERVER KEY..." << std::endl;
        return 2;
    }
    {
        // Bad use through the wrapper gets the same documented codes.
        auto options = concordkv::Options::create();
        ASSERT(options.ok());
        concordkv::Options opts = std::move(options).value();
        ASSERT(opts.add_server("ftp://nope:1").code() == CONCORDKV_RESULT_INVALID_SERVER);
        auto none = concordkv::Client::create(opts);
        ASSERT(none.code() == CONCORDKV_RESULT_INVALID_SERVER);
        ASSERT(none.message().find("server") != std::string::npos);
        ASSERT(opts.add_server("127.0.0.1:1").ok());
        auto unreachable = concordkv::Client::create(opts);
        ASSERT(unreachable.ok());
        concordkv::Client c = std::move(unreachable).value();
        ASSERT(c.wait_ready(200ms).code() == CONCORDKV_RESULT_UNREACHABLE);
        ASSERT(c.route("k").code() == CONCORDKV_RESULT_NOT_READY);
        ASSERT(c.route("").code() == CONCORDKV_RESULT_EMPTY_KEY);
        ASSERT(c.remove_listener(42).code() == CONCORDKV_RESULT_NOT_FOUND);
        ASSERT(c.last_error().find("127.0.0.1:1") != std::string::npos);
    }
    {
        // https:// needs a CA file, and the TLS files are checked when set.
        auto options = concordkv::Options::create();
        ASSERT(options.ok());
        concordkv::Options opts = std::move(options).value();
        ASSERT(opts.add_server("https://127.0.0.1:1").ok());
        ASSERT(concordkv::Client::create(opts).code() == CONCORDKV_RESULT_INVALID_TLS);
        ASSERT(opts.set_ca_file("/nonexistent/ca.pem").code() == CONCORDKV_RESULT_INVALID_TLS);
        ASSERT(opts.set_client_cert_file("/nonexistent/c.pem").code() == CONCORDKV_RESULT_INVALID_TLS);
        ASSERT(opts.set_client_key_file("/nonexistent/k.pem").code() == CONCORDKV_RESULT_INVALID_TLS);
        ASSERT(concordkv::message(CONCORDKV_RESULT_INVALID_TLS).find("TLS") != std::string::npos);
    }

    auto options = concordkv::Options::create();
    ASSERT(options.ok());
    concordkv::Options opts = std::move(options).value();
    ASSERT(opts.add_server(argv[1]).ok());
    auto created = concordkv::Client::create(opts);
    ASSERT(created.ok());
    concordkv::Client client = std::move(created).value();
    auto ready = client.wait_ready(20s);
    ASSERT(ready.ok());

    std::mutex lock;
    std::vector<std::string> lines;
    std::atomic<uint64_t> last{0};
    auto listener = client.on_change([&](const concordkv_change &change) {
        std::lock_guard<std::mutex> guard(lock);
        for (size_t i = 0; i < change.event_count; ++i) {
            const concordkv_event &e = change.events[i];
            lines.push_back("EVENT " + std::to_string(e.version) + " " + e.type_name + " " +
                            (e.shard_id ? e.shard_id : "-") + " " + (e.node_id ? e.node_id : "-"));
        }
        last = change.version;
    });
    ASSERT(listener.ok());

    for (int k = 2; k < argc; ++k) {
        auto route = client.route(argv[k]);
        ASSERT(route.ok());
        const concordkv::Route &r = route.value();
        std::cout << "ROUTE " << argv[k] << " " << r.shard_id << " " << r.epoch << " "
                  << r.primary.node_id << " " << r.primary.address;
        for (const auto &n : r.replicas) {
            std::cout << " " << n.node_id;
        }
        std::cout << "\n";
    }
    auto hash = client.config_hash();
    ASSERT(hash.ok() && hash.value().size() == 16);
    auto json = client.snapshot_json();
    ASSERT(json.ok() && json.value().find("\"shardMap\"") != std::string::npos);
    std::cout << "READY " << client.version() << " " << hash.value() << std::endl;

    std::string word;
    unsigned long long wanted = 0;
    ASSERT(std::cin >> word >> wanted && word == "WAIT");
    auto reached = client.wait_for_version(wanted, 20s);
    ASSERT(reached.ok());
    for (int i = 0; i < 2000 && last.load() < wanted; ++i) {
        std::this_thread::sleep_for(10ms);
    }
    ASSERT(client.remove_listener(listener.value()).ok());
    {
        std::lock_guard<std::mutex> guard(lock);
        for (const auto &l : lines) {
            std::cout << l << "\n";
        }
    }
    std::cout << "DONE" << std::endl;
    return 0;
}
