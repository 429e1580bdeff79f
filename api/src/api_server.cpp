// The API socket: lock, bind, accept thread and connection threads.
#include "api/api_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <future>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>

#include "common/event_fd.h"
#include "common/log.h"
#include "common/unique_fd.h"
#include "vmm/seccomp.h"
#include "connection.h"
#include "unix_socket.h"

namespace vmm::api {
namespace {

constexpr int kListenBacklog = 64;
constexpr std::chrono::milliseconds kReapInterval{1000};

struct Connection {
    std::thread thread;
    std::atomic<bool> done{false};
};

// `<path>.lock`, held for the server's life. It is never unlinked: removing it
// would let a second VMM lock a fresh file while a third still holds the old one.
Result<UniqueFd> take_lock(const std::string& socket_path) {
    std::string lock_path = socket_path + ".lock";
    UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) return Error::from_errno(fmt::format("cannot open API socket lock {}", lock_path));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) return Error::msg("another VMM is using the API socket {}", socket_path);
        return Error::from_errno(fmt::format("cannot lock {}", lock_path));
    }
    return fd;
}

// Removes a socket left by a VMM that died; refuses to remove anything else.
Result<void> remove_stale_socket(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return ok();
        return Error::from_errno(fmt::format("cannot inspect {}", path));
    }
    if (!S_ISSOCK(st.st_mode)) return Error::msg("{} exists and is not a socket; not replacing it", path);
    if (::unlink(path.c_str()) != 0) return Error::from_errno(fmt::format("cannot remove stale socket {}", path));
    log::info("API: replaced the stale socket {}", path);
    return ok();
}

Result<UniqueFd> bind_socket(const std::string& path, ino_t& inode) {
    sockaddr_un addr = VMM_TRY(detail::unix_address(path));
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return Error::from_errno("cannot create the API socket");
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
        return Error::from_errno(fmt::format("cannot bind the API socket {}", path));
    }
    // Nobody can connect before listen(), so tightening the mode here leaves no
    // window with a wider one (and avoids umask, which is process-wide).
    struct stat st {};
    if (::chmod(path.c_str(), 0600) != 0 || ::stat(path.c_str(), &st) != 0) {
        auto err = Error::from_errno(fmt::format("cannot set the mode of {}", path));
        ::unlink(path.c_str());
        return err;
    }
    inode = st.st_ino;
    if (::listen(fd.get(), kListenBacklog) != 0) {
        auto err = Error::from_errno(fmt::format("cannot listen on {}", path));
        ::unlink(path.c_str());
        return err;
    }
    return fd;
}

}  // namespace

struct ApiServer::Impl {
    ApiServerOptions options;
    std::shared_ptr<RequestChannel> requests;
    UniqueFd lock;
    UniqueFd listener;
    ino_t socket_inode = 0;
    EventFd stop;
    std::thread accept_thread;
    std::mutex mutex;
    std::list<std::unique_ptr<Connection>> connections;
    log::RateLimiter warn_limit;

    Impl(ApiServerOptions o, std::shared_ptr<RequestChannel> r, EventFd s)
        : options(std::move(o)), requests(std::move(r)), stop(std::move(s)) {}

    detail::ConnectionContext context() const {
        HttpLimits limits;
        limits.max_body_bytes = options.max_body_bytes;
        return detail::ConnectionContext{options, limits, *requests, stop.fd()};
    }

    // Joins finished connection threads; returns how many are still open.
    size_t reap() {
        std::lock_guard guard(mutex);
        for (auto it = connections.begin(); it != connections.end();) {
            if ((*it)->done.load()) {
                (*it)->thread.join();
                it = connections.erase(it);
            } else {
                ++it;
            }
        }
        return connections.size();
    }

    void refuse(UniqueFd fd, int status, std::string_view why) {
        HttpReply reply = error_reply(status, why);
        reply.close = true;
        // Best effort, without waiting: a full socket buffer just loses the reply.
        (void)detail::send_all(fd.get(), serialize(reply), stop.fd(), std::chrono::milliseconds(0));
    }

    void spawn(UniqueFd fd) {
        auto conn = std::make_unique<Connection>();
        Connection* raw = conn.get();
        int f = fd.release();  // the thread owns it from here
        try {
            raw->thread = std::thread([this, raw, f] {
                UniqueFd owned(f);
                (void)::pthread_setname_np(::pthread_self(), "api-conn");
                // Under the accept thread's filter already; this one drops accept4
                // and thread creation. Without it the connection is not served.
                if (auto r = apply_seccomp(ThreadKind::api_connection, options.seccomp); !r) {
                    if (warn_limit.allow()) log::error("API: {}; closing the connection", r.error().message());
                } else {
                    detail::serve_connection(context(), std::move(owned));
                }
                raw->done.store(true);
            });
        } catch (const std::system_error& e) {
            ::close(f);  // the thread never started
            if (warn_limit.allow()) log::warn("API: cannot start a connection thread: {}", e.what());
            return;
        }
        std::lock_guard guard(mutex);
        connections.push_back(std::move(conn));
    }

    void accept_loop() {
        for (;;) {
            switch (detail::wait_fd(listener.get(), POLLIN, stop.fd(), kReapInterval)) {
                case detail::WaitResult::stopped: return;
                case detail::WaitResult::timed_out: reap(); continue;
                case detail::WaitResult::failed: return;
                case detail::WaitResult::ready: break;
            }
            UniqueFd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
            if (!fd) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    if (warn_limit.allow()) log::warn("API: accept: {}", std::strerror(errno));
                    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // do not spin
                }
                continue;
            }
            if (reap() >= options.max_connections) {
                refuse(std::move(fd), 503, "too many API connections; try again");
                continue;
            }
            spawn(std::move(fd));
        }
    }

    void shutdown() {
        (void)stop.signal();
        if (accept_thread.joinable()) accept_thread.join();
        std::list<std::unique_ptr<Connection>> remaining;
        {
            std::lock_guard guard(mutex);
            remaining.swap(connections);
        }
        for (auto& c : remaining) c->thread.join();
        // Unlink only our own socket: a later VMM may have replaced it already.
        struct stat st {};
        if (::lstat(options.socket_path.c_str(), &st) == 0 && st.st_ino == socket_inode) {
            ::unlink(options.socket_path.c_str());
        }
    }
};

Result<std::unique_ptr<ApiServer>> ApiServer::start(const ApiServerOptions& options,
                                                     std::shared_ptr<RequestChannel> requests) {
    if (!requests) return Error::msg("API server needs a request channel");
    if (options.max_connections == 0) return Error::msg("API server needs max_connections >= 1");
    VMM_TRY(detail::unix_address(options.socket_path));  // fail on a bad path before creating the lock
    EventFd stop = VMM_TRY(EventFd::create());
    auto impl = std::make_unique<Impl>(options, std::move(requests), std::move(stop));
    impl->lock = VMM_TRY(take_lock(options.socket_path));
    VMM_TRY(remove_stale_socket(options.socket_path));
    impl->listener = VMM_TRY(bind_socket(options.socket_path, impl->socket_inode));
    Impl* raw = impl.get();
    std::promise<Result<void>> filtered;
    auto installed = filtered.get_future();
    try {
        // The thread owns the promise, so the shared state outlives set_value().
        impl->accept_thread = std::thread([raw, filtered = std::move(filtered)]() mutable {
            (void)::pthread_setname_np(::pthread_self(), "api-accept");
            auto r = apply_seccomp(ThreadKind::api_accept, raw->options.seccomp);
            bool installed_ok = r.has_value();
            filtered.set_value(std::move(r));
            if (installed_ok) raw->accept_loop();
        });
    } catch (const std::system_error& e) {
        ::unlink(options.socket_path.c_str());
        return Error::msg("cannot start the API thread: {}", e.what());
    }
    if (auto r = installed.get(); !r) {
        impl->accept_thread.join();
        ::unlink(options.socket_path.c_str());
        return r.error();
    }
    log::info("API: listening on {}", options.socket_path);
    return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

ApiServer::~ApiServer() {
    if (m_impl) m_impl->shutdown();
}

const std::string& ApiServer::socket_path() const { return m_impl->options.socket_path; }

}  // namespace vmm::api
