// FaultyEnv: the real Env with storage faults the unit tests inject — a disk
// that fills up (NoSpace after a number of bytes per written file, or at
// creation), a failing rename, and reads of files that come back damaged (one
// byte flipped in the middle). `applies` picks the paths the faults hit (all
// by default; e.g. only spill files). Thread safety: as the real Env, except
// that the settings are not to be changed while a merge runs.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
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
    if (!f.ok() || !applies(p)) return f;
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
  Env* base_ = Env::Default();
};

}  // namespace cloudmerge
