// Result<T>: a small subset of std::expected (not available under -std=c++20 in
// GCC 12). Fallible calls below the API/CLI edge return it; exceptions are only
// used at that edge.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace vmm {

// An error is a message (what failed, with context) plus the errno value when a
// system call was the cause. Messages are one line, suitable for the CLI.
class Error {
public:
    explicit Error(std::string message, int errno_value = 0)
        : m_message(std::move(message)), m_errno(errno_value) {}

    // Builds an error from the current errno: "context: strerror(errno)".
    static Error from_errno(std::string_view context) {
        int e = errno;
        return Error(fmt::format("{}: {}", context, std::strerror(e)), e);
    }
    template <typename... Args>
    static Error msg(fmt::format_string<Args...> f, Args&&... args) {
        return Error(fmt::format(f, std::forward<Args>(args)...));
    }

    const std::string& message() const { return m_message; }
    int errno_value() const { return m_errno; }

    // Prefixes context, keeping errno: "loading kernel: file too short".
    Error context(std::string_view outer) const {
        return Error(fmt::format("{}: {}", outer, m_message), m_errno);
    }

private:
    std::string m_message;
    int m_errno;
};

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : m_v(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    Result(Error error) : m_v(std::in_place_index<1>, std::move(error)) {}  // NOLINT

    bool has_value() const { return m_v.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & { return std::get<0>(m_v); }
    const T& value() const& { return std::get<0>(m_v); }
    T&& value() && { return std::get<0>(std::move(m_v)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const Error& error() const { return std::get<1>(m_v); }

private:
    std::variant<T, Error> m_v;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : m_error(std::move(error)), m_ok(false) {}  // NOLINT

    bool has_value() const { return m_ok; }
    explicit operator bool() const { return m_ok; }
    void value() const {}
    const Error& error() const { return m_error; }

private:
    Error m_error{""};
    bool m_ok = true;
};

inline Result<void> ok() { return {}; }

}  // namespace vmm

// Early return on error, in the manner of SerenityOS's TRY (GNU statement expression).
#define VMM_TRY(expr)                                   \
    __extension__({                                     \
        auto _vmm_try_result = (expr);                  \
        if (!_vmm_try_result) return _vmm_try_result.error(); \
        std::move(_vmm_try_result).value();             \
    })

// Like VMM_TRY but adds context to the error.
#define VMM_TRY_CTX(expr, ctx)                                      \
    __extension__({                                                 \
        auto _vmm_try_result = (expr);                              \
        if (!_vmm_try_result) return _vmm_try_result.error().context(ctx); \
        std::move(_vmm_try_result).value();                         \
    })
