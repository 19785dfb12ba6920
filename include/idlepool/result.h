// Result<T>: a value or an Error, for recoverable failures that travel up to the layer that reports them.
// Result<T, E>: the same with a typed error of the caller's (the control protocol's codes, say).
// Library code returns these and does not log; the daemon or CLI logs once. (C++23's std::expected, minus the
// parts this project does not need.)
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace idlepool {

struct Error {
  std::string message;  // says what failed and where, for a human
  int code = 0;         // errno when the failure came from the kernel, else 0

  // "what: strerror(err)", carrying err.
  static Error from_errno(std::string what, int err) { return Error{std::move(what) + ": " + std::strerror(err), err}; }
};

template <class T, class E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(E error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const E& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(E error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const E& error() const { return error_; }

 private:
  E error_{};
  bool ok_ = true;
};

}  // namespace idlepool
