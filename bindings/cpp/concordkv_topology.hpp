// concordkv_topology.hpp: header-only C++17 RAII layer over libconcordkv_topology.
//
// Handles are std::unique_ptr with the library's free function as deleter, so a
// freed handle cannot be used again; every fallible call returns a [[nodiscard]]
// Result<T> that carries the library's result code and its message.
//
// Thread-safety follows the C API: a Client may be used from many threads at once
// (route, version, snapshot_json, report_stale, on_change, remove_listener);
// Options is for one thread at a time. Change callbacks run on the client's own
// thread and must return quickly without blocking.
#ifndef CONCORDKV_TOPOLOGY_HPP
#define CONCORDKV_TOPOLOGY_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concordkv_topology.h"

namespace concordkv {

// The text of a result code.
inline std::string message(concordkv_result code) {
    char buf[256];
    size_t written = 0;
    if (concordkv_result_message(code, buf, sizeof buf, &written) != CONCORDKV_RESULT_OK) {
        return "unknown error";
    }
    return std::string(buf, written);
}

// A value or the result code that explains its absence.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : code_(CONCORDKV_RESULT_OK), value_(std::move(value)) {}
    static Result error(concordkv_result code) { return Result(code); }

    [[nodiscard]] bool ok() const noexcept { return code_ == CONCORDKV_RESULT_OK; }
    explicit operator bool() const noexcept { return ok(); }
    [[nodiscard]] concordkv_result code() const noexcept { return code_; }
    [[nodiscard]] std::string message() const { return concordkv::message(code_); }
    // The value; only meaningful when ok().
    [[nodiscard]] const T &value() const & noexcept { return value_; }
    [[nodiscard]] T &&value() && noexcept { return std::move(value_); }

private:
    explicit Result(concordkv_result code) : code_(code), value_() {}
    concordkv_result code_;
    T value_;
};

// A result without a value.
class [[nodiscard]] Status {
public:
    Status(concordkv_result code) : code_(code) {}  // NOLINT: implicit on purpose
    [[nodiscard]] bool ok() const noexcept { return code_ == CONCORDKV_RESULT_OK; }
    explicit operator bool() const noexcept { return ok(); }
    [[nodiscard]] concordkv_result code() const noexcept { return code_; }
    [[nodiscard]] std::string message() const { return concordkv::message(code_); }

private:
    concordkv_result code_;
};

struct Node {
    std::string node_id;
    std::string address;  // host:port of the data node
    concordkv_health health = CONCORDKV_HEALTH_UNKNOWN;
};

// Where a key goes (an owned copy of concordkv_route).
struct Route {
    uint64_t version = 0;
    uint64_t key_hash = 0;
    uint64_t epoch = 0;
    concordkv_shard_status status = CONCORDKV_SHARD_STATUS_ACTIVE;
    std::string shard_id;
    Node primary;
    std::vector<Node> replicas;
};

class Options {
public:
    [[nodiscard]] static Result<Options> create() {
        concordkv_options *raw = nullptr;
        concordkv_result code = concordkv_options_new(&raw);
        if (code != CONCORDKV_RESULT_OK) {
            return Result<Options>::error(code);
        }
        return Options(raw);
    }
    Options() = default;

    Status add_server(const std::string &address) {
        return concordkv_options_add_server(handle_.get(), address.c_str());
    }
    Status set_timeouts(std::chrono::milliseconds connect, std::chrono::milliseconds read) {
        return concordkv_options_set_timeouts(handle_.get(), static_cast<uint32_t>(connect.count()),
                                              static_cast<uint32_t>(read.count()));
    }
    Status set_backoff(std::chrono::milliseconds min, std::chrono::milliseconds max) {
        return concordkv_options_set_backoff(handle_.get(), static_cast<uint32_t>(min.count()),
                                             static_cast<uint32_t>(max.count()));
    }
    Status set_auth_token(const std::string &token) {
        return concordkv_options_set_auth_token(handle_.get(), token.c_str());
    }
    Status set_consistency(concordkv_consistency consistency) {
        return concordkv_options_set_consistency(handle_.get(), static_cast<uint32_t>(consistency));
    }
    // TLS for https:// servers: the PEM file of the CA that verifies them (required;
    // the system's roots are never used) and, for servers that require one, a client
    // certificate and its key. Files are checked when set (CONCORDKV_RESULT_INVALID_TLS).
    Status set_ca_file(const std::string &path) {
        return concordkv_options_set_ca_file(handle_.get(), path.c_str());
    }
    Status set_client_cert_file(const std::string &path) {
        return concordkv_options_set_client_cert_file(handle_.get(), path.c_str());
    }
    Status set_client_key_file(const std::string &path) {
        return concordkv_options_set_client_key_file(handle_.get(), path.c_str());
    }
    [[nodiscard]] const concordkv_options *get() const noexcept { return handle_.get(); }

private:
    struct Free {
        void operator()(concordkv_options *p) const noexcept { concordkv_options_free(p); }
    };
    explicit Options(concordkv_options *raw) : handle_(raw) {}
    std::unique_ptr<concordkv_options, Free> handle_;
};

// A change as a C++ callback sees it (valid during the call only).
using ChangeCallback = std::function<void(const concordkv_change &)>;

class Client {
public:
    // Starts a client (its thread connects in the background; see wait_ready).
    [[nodiscard]] static Result<Client> create(const Options &options) {
        concordkv_client *raw = nullptr;
        concordkv_result code = concordkv_client_new(options.get(), &raw);
        if (code != CONCORDKV_RESULT_OK) {
            return Result<Client>::error(code);
        }
        return Client(raw);
    }
    Client() = default;

    // Waits until a topology is there; the version.
    [[nodiscard]] Result<uint64_t> wait_ready(std::chrono::milliseconds timeout) const {
        return wait_for_version(1, timeout);
    }
    [[nodiscard]] Result<uint64_t> wait_for_version(uint64_t version,
                                                    std::chrono::milliseconds timeout) const {
        uint64_t reached = 0;
        concordkv_result code = concordkv_client_wait_for_version(
            handle_.get(), version, static_cast<uint32_t>(timeout.count()), &reached);
        if (code != CONCORDKV_RESULT_OK) {
            return Result<uint64_t>::error(code);
        }
        return reached;
    }

    [[nodiscard]] uint64_t version() const noexcept {
        uint64_t v = 0;
        if (concordkv_client_version(handle_.get(), &v) != CONCORDKV_RESULT_OK) {
            return 0;
        }
        return v;
    }

    // Routes a key into an owned Route; never blocks on the network.
    [[nodiscard]] Result<Route> route(std::string_view key) const {
        concordkv_node replicas_small[8];
        char strings_small[1024];
        std::vector<concordkv_node> replicas_big;
        std::vector<char> strings_big;
        concordkv_route_buffers bufs{replicas_small, 8, strings_small, sizeof strings_small, 0, 0};
        concordkv_route raw{};
        const auto *bytes = reinterpret_cast<const uint8_t *>(key.data());
        concordkv_result code = concordkv_client_route(handle_.get(), bytes, key.size(), &bufs, &raw);
        if (code == CONCORDKV_RESULT_BUFFER_TOO_SMALL) {
            // The topology has unusually long names: retry with the sizes asked for.
            replicas_big.resize(bufs.replicas_needed + 1);
            strings_big.resize(bufs.strings_needed + 64);
            bufs = concordkv_route_buffers{replicas_big.data(), replicas_big.size(),
                                           strings_big.data(), strings_big.size(), 0, 0};
            code = concordkv_client_route(handle_.get(), bytes, key.size(), &bufs, &raw);
        }
        if (code != CONCORDKV_RESULT_OK) {
            return Result<Route>::error(code);
        }
        Route out;
        out.version = raw.version;
        out.key_hash = raw.key_hash;
        out.epoch = raw.epoch;
        out.status = raw.status;
        out.shard_id = raw.shard_id;
        out.primary = Node{raw.primary.node_id, raw.primary.address, raw.primary.health};
        for (size_t i = 0; i < raw.replica_count; ++i) {
            const concordkv_node &n = raw.replicas[i];
            out.replicas.push_back(Node{n.node_id, n.address, n.health});
        }
        return out;
    }

    [[nodiscard]] Result<std::string> snapshot_json() const {
        return text(concordkv_client_snapshot_json);
    }
    [[nodiscard]] Result<std::string> config_hash() const {
        return text(concordkv_client_config_hash);
    }
    [[nodiscard]] std::string last_error() const {
        Result<std::string> r = text(concordkv_client_last_error);
        return r.ok() ? r.value() : std::string();
    }

    // Reports a route refused by a data node; true when a refresh was scheduled.
    [[nodiscard]] Result<bool> report_stale(const std::string &shard_id, uint64_t epoch) const {
        bool scheduled = false;
        concordkv_result code =
            concordkv_client_report_stale(handle_.get(), shard_id.c_str(), epoch, &scheduled);
        if (code != CONCORDKV_RESULT_OK) {
            return Result<bool>::error(code);
        }
        return scheduled;
    }

    // Registers a callback (runs on the client's thread; must not block); its id.
    [[nodiscard]] Result<uint64_t> on_change(ChangeCallback callback) {
        auto owned = std::make_unique<ChangeCallback>(std::move(callback));
        uint64_t id = 0;
        concordkv_result code =
            concordkv_client_on_change(handle_.get(), &Client::trampoline, owned.get(), &id);
        if (code != CONCORDKV_RESULT_OK) {
            return Result<uint64_t>::error(code);
        }
        std::lock_guard<std::mutex> lock(listeners_->mutex);
        listeners_->callbacks.emplace(id, std::move(owned));
        return id;
    }

    // Removes a callback; once this returns it never runs again.
    Status remove_listener(uint64_t id) {
        concordkv_result code = concordkv_client_remove_listener(handle_.get(), id);
        if (code == CONCORDKV_RESULT_OK) {
            std::lock_guard<std::mutex> lock(listeners_->mutex);
            listeners_->callbacks.erase(id);
        }
        return code;
    }

    [[nodiscard]] const concordkv_client *get() const noexcept { return handle_.get(); }

private:
    struct Free {
        void operator()(concordkv_client *p) const noexcept { concordkv_client_free(p); }
    };
    struct Listeners {
        std::mutex mutex;
        std::map<uint64_t, std::unique_ptr<ChangeCallback>> callbacks;
    };

    explicit Client(concordkv_client *raw)
        : listeners_(std::make_unique<Listeners>()), handle_(raw) {}

    static void trampoline(void *userdata, const concordkv_change *change) {
        // Exceptions must not cross into the library.
        try {
            (*static_cast<ChangeCallback *>(userdata))(*change);
        } catch (...) {
        }
    }

    using TextFn = concordkv_result (*)(const concordkv_client *, char *, size_t, size_t *);
    [[nodiscard]] Result<std::string> text(TextFn fn) const {
        std::string out(256, '\0');
        size_t needed = 0;
        concordkv_result code = fn(handle_.get(), out.data(), out.size(), &needed);
        if (code == CONCORDKV_RESULT_BUFFER_TOO_SMALL) {
            out.assign(needed + 1, '\0');
            code = fn(handle_.get(), out.data(), out.size(), &needed);
        }
        if (code != CONCORDKV_RESULT_OK) {
            return Result<std::string>::error(code);
        }
        out.resize(needed);
        return out;
    }

    // Declared before handle_ so it is destroyed after it: the client's thread
    // has stopped (and no callback runs) before the callbacks are destroyed.
    std::unique_ptr<Listeners> listeners_;
    std::unique_ptr<concordkv_client, Free> handle_;
};

}  // namespace concordkv

#endif  // CONCORDKV_TOPOLOGY_HPP
