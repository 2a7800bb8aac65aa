// FaultyEnv: the real Env with storage faults the unit tests inject — a disk
// that fills up (NoSpace after a number of bytes per written file, or at
// creation), a failing rename, and reads of files that come back damaged (one
// byte flipped in the middle). `applies` picks the paths the faults hit (all
// by default; e.g. only spill files). `held` orders two threads' I/O: writes to
// the files it names, but the first (an output's header), wait (up to 10 s)
// until a file that `applies` names has been created. Thread safety: as the real Env, except that the settings are
// not to be changed while a merge runs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cloudmerge/io/env.h"

namespace cloudmerge {

class FaultyEnv final : public Env {
 public:
  size_t fail_after = SIZE_MAX;  // bytes each written file takes before NoSpace
  bool fail_create = false;
  bool fail_rename = false;
  bool corrupt_reads = false;
  std::function<bool(const std::string&)> applies = [](const std::string&) { return true; };
  std::vector<size_t> appends;  // sizes of the writes that reached faulted files (one thread only)
  std::function<bool(const std::string&)> held = [](const std::string&) { return false; };

  Result<std::unique_ptr<InputData>> ReadFile(const std::string& p) override {
    auto in = base_->ReadFile(p);
    if (!in.ok() || !corrupt_reads || !applies(p) || (*in)->bytes().size() < 64) return in;
    std::string bytes((*in)->bytes());
    bytes[bytes.size() / 2] ^= 0x20;
    return std::unique_ptr<InputData>(new Copy(std::move(bytes)));
  }
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& p) override {
    if (fail_create && applies(p))
      return Status::NoSpace("cannot create output " + p + ": no space left on device (injected)");
    auto f = base_->NewWritableFile(p);
    if (f.ok() && held(p)) return std::unique_ptr<WritableFile>(new Held(std::move(f.value()), applied_created_));
    if (!f.ok() || !applies(p)) return f;
    applied_created_->store(true);
    return std::unique_ptr<WritableFile>(new Limited(std::move(f.value()), fail_after, p, &appends));
  }
  Status RenameFile(const std::string& a, const std::string& b) override {
    if (fail_rename) return Status::IOError("injected rename failure for " + b);
    return base_->RenameFile(a, b);
  }
  Status RemoveFile(const std::string& p) override { return base_->RemoveFile(p); }

 private:
  class Copy final : public InputData {
   public:
    explicit Copy(std::string s) : s_(std::move(s)) {}
    std::string_view bytes() const override { return s_; }

   private:
    std::string s_;
  };
  class Limited final : public WritableFile {
   public:
    Limited(std::unique_ptr<WritableFile> f, size_t limit, std::string path, std::vector<size_t>* appends)
        : f_(std::move(f)), left_(limit), path_(std::move(path)), appends_(appends) {}
    Status Append(std::string_view d) override {
      if (d.size() > left_) return Status::NoSpace("cannot write " + path_ + ": no space left on device (injected)");
      left_ -= d.size();
      appends_->push_back(d.size());
      return f_->Append(d);
    }
    Status Close() override { return f_->Close(); }

   private:
    std::unique_ptr<WritableFile> f_;
    size_t left_;
    std::string path_;
    std::vector<size_t>* appends_;
  };
  // Writes wait until *go (a file `applies` names exists), at most 10 s.
  class Held final : public WritableFile {
   public:
    Held(std::unique_ptr<WritableFile> f, std::shared_ptr<const std::atomic<bool>> go)
        : f_(std::move(f)), go_(std::move(go)) {}
    Status Append(std::string_view d) override {
      if (appended_++ > 0)
        for (int i = 0; i < 10000 && !go_->load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      return f_->Append(d);
    }
    Status Close() override { return f_->Close(); }

   private:
    std::unique_ptr<WritableFile> f_;
    std::shared_ptr<const std::atomic<bool>> go_;
    size_t appended_ = 0;
  };
  Env* base_ = Env::Default();
  std::shared_ptr<std::atomic<bool>> applied_created_ = std::make_shared<std::atomic<bool>>(false);  // movable Env
};

}  // namespace cloudmerge
