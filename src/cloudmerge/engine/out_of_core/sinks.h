// Where the out-of-core join's matches go (grace_join.h, step 2): a sorted run
// file per task (RunSink: output records, with the first x position of every
// block so that the final merge can start a run in the middle), or OUT directly
// under --any-order (DirectSink).
// Thread safety: a sink is used by one thread; Outputs is shared, under its mutex.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/out_of_core/context.h"
#include "cloudmerge/engine/out_of_core/spill_records.h"
#include "cloudmerge/io/env.h"
#include "cloudmerge/io/spill_file.h"

namespace cloudmerge::ooc {

// Where a join task's matches go: a sorted run file (default order), or OUT
// directly (--any-order).
class MatchSink {
 public:
  virtual ~MatchSink() = default;
  // One output line: x's text, then (tab, y's text) when y has value columns, then '\n'.
  virtual Status Emit(uint64_t x_pos, uint64_t y_pos, std::string_view x_text, std::string_view y_text) = 0;
  virtual Status Finish() = 0;
};

// Where a run's blocks start and the first x position in each: lets the final
// merge start reading every run in the middle, at a split point.
struct RunBlock {
  uint64_t first_x = 0, offset = 0, raw_bytes = 0;
};

struct RunFile {
  std::string path;
  uint64_t records = 0;
  std::vector<RunBlock> blocks;  // in file order, so by first_x too
};

// Shared by tasks: the runs made so far, and OUT for --any-order.
struct Outputs {
  std::mutex mu;
  std::vector<RunFile> runs;
  AtomicOutput* out = nullptr;
};

class RunSink final : public MatchSink {
 public:
  RunSink(Context* ctx, Outputs* outs) : ctx_(ctx), outs_(outs) {}
  Status Emit(uint64_t x_pos, uint64_t y_pos, std::string_view x_text, std::string_view y_text) override {
    uint32_t len = static_cast<uint32_t>(x_text.size() + 1 + (ctx_->y_has_values ? y_text.size() + 1 : 0));
    Start(x_pos);
    // A short record is put together on the stack and appended once (as PartRecordWriter does).
    char buf[256];
    char* p = records_out_.Encode(buf, x_pos, y_pos, len);
    if (len <= sizeof buf - OutRecordWriter::kMaxHeaderBytes) {
      std::memcpy(p, x_text.data(), x_text.size());
      p += x_text.size();
      if (ctx_->y_has_values) {
        *p++ = '\t';
        std::memcpy(p, y_text.data(), y_text.size());
        p += y_text.size();
      }
      *p++ = '\n';
      raw_.append(buf, static_cast<size_t>(p - buf));
    } else {
      raw_.append(buf, static_cast<size_t>(p - buf));
      raw_.append(x_text);
      if (ctx_->y_has_values) {
        raw_.push_back('\t');
        raw_.append(y_text);
      }
      raw_.push_back('\n');
    }
    ++records_;
    if (raw_.size() >= ctx_->block_bytes) return Seal();
    return Status::OK();
  }
  // A line that already is an output line (intermediate merges).
  Status EmitLine(uint64_t x_pos, uint64_t y_pos, std::string_view line) {
    Start(x_pos);
    records_out_.Append(raw_, x_pos, y_pos, line.size());
    raw_.append(line);
    ++records_;
    if (raw_.size() >= ctx_->block_bytes) return Seal();
    return Status::OK();
  }
  Status Finish() override {
    if (records_) CM_RETURN_IF_ERROR(Seal());
    if (!writer_) return Status::OK();
    CM_RETURN_IF_ERROR(writer_->Close());
    ctx_->CountSpill(*writer_);
    std::lock_guard<std::mutex> lock(outs_->mu);
    outs_->runs.push_back(RunFile{writer_->path(), total_, std::move(blocks_)});
    writer_.reset();
    return Status::OK();
  }

 private:
  void Start(uint64_t x_pos) {  // before each record: a new block starts its positions afresh
    if (!raw_.empty()) return;
    first_x_ = x_pos;
    records_out_.Reset();
  }
  Status Seal() {
    if (!writer_) {
      auto w = SpillWriter::Create(ctx_->env, ctx_->dir->NewPath("run"));
      if (!w.ok()) return w.status();
      writer_ = std::move(w.value());
    }
    const uint64_t offset = writer_->bytes_written();
    CM_RETURN_IF_ERROR(writer_->AppendBlock(raw_, static_cast<uint32_t>(records_), ctx_->zstd_level));
    blocks_.push_back(RunBlock{first_x_, offset, raw_.size()});
    total_ += records_;
    raw_.clear();
    records_ = 0;
    return Status::OK();
  }
  Context* ctx_;
  Outputs* outs_;
  std::unique_ptr<SpillWriter> writer_;
  std::string raw_;
  OutRecordWriter records_out_;
  uint64_t records_ = 0, total_ = 0, first_x_ = 0;
  std::vector<RunBlock> blocks_;
};

class DirectSink final : public MatchSink {
 public:
  DirectSink(Context* ctx, Outputs* outs) : ctx_(ctx), outs_(outs) {}
  Status Emit(uint64_t, uint64_t, std::string_view x_text, std::string_view y_text) override {
    buf_.append(x_text);
    if (ctx_->y_has_values) {
      buf_.push_back('\t');
      buf_.append(y_text);
    }
    buf_.push_back('\n');
    if (buf_.size() >= ctx_->block_bytes) return Finish();
    return Status::OK();
  }
  Status Finish() override {
    if (buf_.empty()) return Status::OK();
    std::lock_guard<std::mutex> lock(outs_->mu);
    Status st = outs_->out->Append(buf_);
    buf_.clear();
    return st;
  }

 private:
  Context* ctx_;
  Outputs* outs_;
  std::string buf_;
};

// The sink for one join task: DirectSink under --any-order, else a RunSink.
inline std::unique_ptr<MatchSink> NewMatchSink(Context* ctx, Outputs* outs) {
  if (ctx->options->any_order) return std::make_unique<DirectSink>(ctx, outs);
  return std::make_unique<RunSink>(ctx, outs);
}

}  // namespace cloudmerge::ooc
