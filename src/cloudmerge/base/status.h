// Status: the outcome of an operation that can fail (I/O, bad input, bad options).
// A Status is either ok or carries a code and a complete, human-readable message
// (what happened, where, and what to do about it). Values, not exceptions: the
// scan/build/probe loops return Status and never throw.
// An error that the user fixes by changing a setting (the memory limit, the
// temporary directory, ...) says so in words ("raise the memory limit") and
// carries which setting (Status::setting()); the caller, which knows how the
// user spells it (a flag, an environment variable), names it when it shows the
// error (base/setting_names.h). So the engine never speaks one caller's language.
// Thread safety: a Status is a plain value; copies are independent.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace cloudmerge {

// A setting an error asks the user to change. kNone: none.
enum class Setting { kNone = 0, kMemoryLimit, kTempDir, kMaxOutputRows, kMaxDecompressedSize, kAllowNumericHeader };

class Status {
 public:
  // kCorruption: bytes that arrived damaged (a checksum disagrees); reading again may help.
  enum class Code { kOk = 0, kInvalidInput, kIOError, kInvalidArgument, kNoSpace, kInternal, kNotFound, kCorruption };

  Status() = default;
  static Status OK() { return Status(); }
  static Status InvalidInput(std::string msg) { return Status(Code::kInvalidInput, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }
  static Status NoSpace(std::string msg) { return Status(Code::kNoSpace, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }
  // An object, key or bucket that does not exist (an I/O error the caller may expect).
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // Which setting the message asks the user to change (kNone: none).
  Setting setting() const { return setting_; }
  // This status with another message (code and setting kept).
  Status WithMessage(std::string msg) const {
    Status copy = *this;
    copy.message_ = std::move(msg);
    return copy;
  }
  // This status, naming `s` as the setting to change.
  Status WithSetting(Setting s) const {
    Status copy = *this;
    copy.setting_ = s;
    return copy;
  }

  // Process exit code for this status: 0 ok, 2 usage, 3 bad input, 4 I/O, 5 internal.
  int ExitCode() const;

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}
  Code code_ = Code::kOk;
  std::string message_;
  Setting setting_ = Setting::kNone;
};

// Result<T>: a value or the Status explaining why there is none.
template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT
  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  T& operator*() { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

#define CM_RETURN_IF_ERROR(expr)        \
  do {                                  \
    ::cloudmerge::Status _st = (expr);  \
    if (!_st.ok()) return _st;          \
  } while (0)

inline int Status::ExitCode() const {
  switch (code_) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument: return 2;
    case Code::kInvalidInput: return 3;
    case Code::kIOError:
    case Code::kNoSpace:
    case Code::kCorruption:
    case Code::kNotFound: return 4;
    default: return 5;
  }
}

}  // namespace cloudmerge
