#include "cloudmerge/engine/grace_join.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <fmt/format.h>

#include "cloudmerge/engine/join_hash_table.h"
#include "cloudmerge/engine/merge.h"
#include "cloudmerge/engine/join_keys.h"
#include "cloudmerge/engine/key_stats.h"
#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/base/parallel.h"
#include "cloudmerge/engine/phase_timer.h"
#include "cloudmerge/io/spill_directory.h"
#include "cloudmerge/io/spill_file.h"

namespace cloudmerge {
namespace {


// ---- Record layouts (docs/spill-format.md, "Records") ------------------------
// Partition record: u64 position | u32 key length | u32 text length | key | text
//   position: (unit << 40) | row within the unit — increasing in file order.
//   key: the ID as read (unquoted); text: x's whole row, or y's fields but the
//   ID, encoded for output.
// Output record: u64 x position | u64 y position | u32 line length | line ('\n' included)
constexpr size_t kPartHeader = 16;
constexpr size_t kOutHeader = 20;

inline void PutU32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
inline void PutU64(std::string& s, uint64_t v) { s.append(reinterpret_cast<const char*>(&v), 8); }
inline uint32_t GetU32(const char* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
inline uint64_t GetU64(const char* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

inline void AppendPartRecord(std::string& s, uint64_t pos, std::string_view key, std::string_view text) {
  PutU64(s, pos);
  PutU32(s, static_cast<uint32_t>(key.size()));
  PutU32(s, static_cast<uint32_t>(text.size()));
  s.append(key);
  s.append(text);
}

struct PartRecord {
  uint64_t pos;
  std::string_view key, text;
};

// Walks the records of one decoded block. Lengths were covered by the block's
// checksum; they are still bounds-checked so that no input can read past it.
class PartRecords {
 public:
  explicit PartRecords(std::string_view block) : p_(block.data()), end_(block.data() + block.size()) {}
  // false at the end; *bad set when a record overruns the block.
  bool Next(PartRecord* r, bool* bad) {
    if (p_ == end_) return false;
    if (end_ - p_ < static_cast<ptrdiff_t>(kPartHeader)) return *bad = true, false;
    r->pos = GetU64(p_);
    uint32_t kl = GetU32(p_ + 8), tl = GetU32(p_ + 12);
    if (static_cast<size_t>(end_ - p_) < kPartHeader + kl + tl) return *bad = true, false;
    r->key = {p_ + kPartHeader, kl};
    r->text = {p_ + kPartHeader + kl, tl};
    p_ += kPartHeader + kl + tl;
    return true;
  }

 private:
  const char* p_;
  const char* end_;
};

Status BadRecord(const std::string& path) {
  return Status::IOError(fmt::format("spill file {} holds a malformed record although its checksums are right: "
                                     "this is a bug in cloudmerge; please report it with the inputs.", path));
}

// Reads a partition file block by block: on_record(const PartRecord&) per record,
// then end_block() (which may fail) after each block.
template <class OnRecord, class EndBlock>
Status ForEachPartRecord(Env* env, const std::string& path, OnRecord&& on_record, EndBlock&& end_block) {
  auto reader = SpillReader::Open(env, path);
  if (!reader.ok()) return reader.status();
  std::string block;
  uint32_t n;
  for (;;) {
    auto more = (*reader)->Next(&block, &n);
    if (!more.ok()) return more.status();
    if (!*more) return Status::OK();
    PartRecords recs(block);
    PartRecord r;
    bool bad = false;
    while (recs.Next(&r, &bad)) on_record(r);
    if (bad) return BadRecord(path);
    CM_RETURN_IF_ERROR(end_block());
  }
}

// One spill file of partition records and what it holds.
struct SpillPart {
  std::string path;
  uint64_t records = 0, raw_bytes = 0;
};

// The first error of a parallel phase; later ones are dropped.
class FirstError {
 public:
  void Set(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.ok() && !s.ok()) status_ = std::move(s);
    failed_.store(true, std::memory_order_relaxed);
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  Status Get() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  std::mutex mu_;
  Status status_;
  std::atomic<bool> failed_{false};
};

// Everything a run shares between its phases and threads.
struct Context {
  Env* env = nullptr;
  const MergeOptions* options = nullptr;
  unsigned threads = 1;
  SpillDirectory* dir = nullptr;
  MergeStats* stats = nullptr;
  Progress* progress = nullptr;
  uint64_t memory_limit = 0;
  uint64_t task_budget = 0;  // memory for one join task's y side
  size_t block_bytes = 0;    // raw bytes per spill block
  int zstd_level = kSpillZstdLevel;  // or kSpillStoreRaw
  uint32_t max_fanout = 2;
  KeyMode x_mode = KeyMode::kText, y_mode = KeyMode::kText;
  PandasRules rules;  // options->pandas
  bool y_has_values = true;

  std::atomic<uint64_t> spilled_bytes{0}, spill_files{0};
  std::atomic<uint64_t> output_rows{0};
  std::atomic<bool> over_limit{false};  // --max-output-rows exceeded: count, stop emitting
  std::atomic<uint64_t> stats_partitions{0}, stats_nested{0}, y_distinct_keys{0};
  std::atomic<unsigned> stats_levels{0};

  void AddProgress(uint64_t rows, uint64_t bytes) {
    if (progress) progress->Add(rows, bytes);
  }
  void CountSpill(const SpillWriter& w) {
    spilled_bytes.fetch_add(w.bytes_written(), std::memory_order_relaxed);
    spill_files.fetch_add(1, std::memory_order_relaxed);
  }
  void AddOutputRows(uint64_t n) {
    uint64_t total = output_rows.fetch_add(n, std::memory_order_relaxed) + n;
    if (options->max_output_rows && total > options->max_output_rows) over_limit.store(true, std::memory_order_relaxed);
  }
  bool emitting() const { return !over_limit.load(std::memory_order_relaxed); }
};

// Estimated bytes to hold a partition's y side in memory and join it: its
// records, a row entry, a hash slot and counters per record.
constexpr uint64_t kBytesPerBuildRow = 72;
constexpr uint64_t kCacheFriendlyPartition = 8u << 20;
constexpr uint64_t kSpillWriteBuffer = 64u << 10;  // SpillWriter's buffer (spill_file.cc)
uint64_t BuildBytes(const SpillPart& y) { return y.raw_bytes + kBytesPerBuildRow * y.records; }

// Fan-out to split `bytes` of build side into pieces of a task's budget, with slack.
uint32_t FanoutFor(const Context& ctx, uint64_t bytes) {
  uint64_t want = bytes * 3 / 2 / std::max<uint64_t>(1, ctx.task_budget) + 1;
  return static_cast<uint32_t>(std::clamp<uint64_t>(want, 2, ctx.max_fanout));
}

// ---- Partition writers -------------------------------------------------------

// The spill files of one side at one level: fanout files, created on first use.
class PartitionFiles {
 public:
  PartitionFiles(Context* ctx, std::string stem, uint32_t fanout) : ctx_(ctx), stem_(std::move(stem)), writers_(fanout), parts_(fanout) {}

  // Appends framed blocks holding `records` records, `raw` raw bytes to partition p.
  Status Append(uint32_t p, std::string_view framed, uint64_t records, uint64_t raw) {
    if (framed.empty()) return Status::OK();
    if (!writers_[p]) {
      parts_[p].path = ctx_->dir->NewPath(fmt::format("{}-p{}", stem_, p));
      auto w = SpillWriter::Create(ctx_->env, parts_[p].path);
      if (!w.ok()) return w.status();
      writers_[p] = std::move(w.value());
    }
    parts_[p].records += records;
    parts_[p].raw_bytes += raw;
    return writers_[p]->AppendFramed(framed);
  }

  // Closes every file; the parts (empty ones have no path).
  Result<std::vector<SpillPart>> Close() {
    for (auto& w : writers_) {
      if (!w) continue;
      CM_RETURN_IF_ERROR(w->Close());
      ctx_->CountSpill(*w);
      w.reset();
    }
    return parts_;
  }
  uint32_t fanout() const { return static_cast<uint32_t>(parts_.size()); }

 private:
  Context* ctx_;
  std::string stem_;
  std::vector<std::unique_ptr<SpillWriter>> writers_;
  std::vector<SpillPart> parts_;
};

// Per-partition raw buffers that become framed blocks when full.
class PartitionBuffers {
 public:
  PartitionBuffers(uint32_t fanout, size_t block_bytes, int zstd_level)
      : raw_(fanout), records_(fanout, 0), framed_(fanout), framed_records_(fanout, 0), framed_raw_(fanout, 0),
        block_bytes_(block_bytes), zstd_level_(zstd_level) {}

  std::string& raw(uint32_t p) { return raw_[p]; }
  // After appending one record to raw(p).
  void Added(uint32_t p) {
    ++records_[p];
    if (raw_[p].size() >= block_bytes_) Seal(p);
  }
  void SealAll() {
    for (uint32_t p = 0; p < raw_.size(); ++p)
      if (records_[p]) Seal(p);
  }
  size_t framed_bytes() const { return framed_total_; }
  // Hands the framed blocks to files and forgets them.
  Status FlushTo(PartitionFiles* files) {
    for (uint32_t p = 0; p < framed_.size(); ++p) {
      CM_RETURN_IF_ERROR(files->Append(p, framed_[p], framed_records_[p], framed_raw_[p]));
      framed_[p].clear();
      framed_records_[p] = framed_raw_[p] = 0;
    }
    framed_total_ = 0;
    return Status::OK();
  }

 private:
  void Seal(uint32_t p) {
    size_t before = framed_[p].size();
    EncodeSpillBlock(raw_[p], static_cast<uint32_t>(records_[p]), zstd_level_, &framed_[p]);
    framed_total_ += framed_[p].size() - before;
    framed_records_[p] += records_[p];
    framed_raw_[p] += raw_[p].size();
    raw_[p].clear();
    records_[p] = 0;
  }
  std::vector<std::string> raw_;
  std::vector<uint64_t> records_;
  std::vector<std::string> framed_;
  std::vector<uint64_t> framed_records_, framed_raw_;
  size_t framed_total_ = 0;
  size_t block_bytes_;
  int zstd_level_;
};

// Units take turns to append to the partition files, in file order, so every
// partition file is in file order. A unit may flush several times while it has
// the turn (a large single-chunk input streams), and passes it on when done.
class Turns {
 public:
  // Blocks until unit u has the turn; false once the phase failed.
  bool Wait(size_t u) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return failed_ || current_ == u; });
    return !failed_;
  }
  void Done(size_t u) {
    std::lock_guard<std::mutex> lock(mu_);
    if (current_ == u) current_ = u + 1;
    cv_.notify_all();
  }
  void Fail() {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t current_ = 0;
  bool failed_ = false;
};

struct PartitionedSide {
  std::vector<SpillPart> parts;
  KeyScan scan;
  uint64_t rows = 0;
};

// Level 0, one segment of the table: scans it in parallel units and appends
// their rows to the partition files. Units are numbered from `unit_base` (the
// units of earlier segments), so record positions keep the file's order.
// `known`: the file's type when already inferred (a re-partition, see RunGraceJoin), else null.
Status PartitionSegment(Context& ctx, const Table& t, bool is_y, uint32_t fanout, PartitionFiles& files,
                        uint64_t* unit_base, PartitionedSide* out, const KeyMode* known) {
  const auto& chunks = t.chunks();
  const size_t ki = t.key_index();
  const size_t ncols = t.column_names().size();
  // Units of consecutive chunks: big enough to amortise the turn, small enough
  // that `threads` of them (input pages + records + framed copies) fit.
  const size_t unit_target = std::clamp<size_t>(ctx.memory_limit / (8 * ctx.threads), size_t{1} << 20, size_t{64} << 20);
  const uint64_t base = *unit_base;
  std::vector<std::pair<size_t, size_t>> units;  // [first chunk, end chunk)
  for (size_t c = 0; c < chunks.size();) {
    size_t e = c, bytes = 0;
    while (e < chunks.size() && (e == c || bytes + (chunks[e].end - chunks[e].begin) <= unit_target)) {
      bytes += chunks[e].end - chunks[e].begin;
      ++e;
    }
    units.emplace_back(c, e);
    c = e;
  }
  Turns turns;
  FirstError error;
  std::vector<KeyScan> scans(units.size(), KeyScan(ctx.rules));
  std::vector<uint64_t> rows(units.size(), 0);
  std::vector<ScanProblem> problems(units.size());
  const size_t flush_bytes = std::max<size_t>(unit_target, 4 << 20);

  ParallelFor(units.size(), ctx.threads, [&](size_t u, unsigned) {
    PartitionBuffers bufs(fanout, ctx.block_bytes, ctx.zstd_level);
    Record rec;
    std::string text;
    bool have_turn = false;
    uint64_t row = 0;
    auto flush = [&]() {
      if (!have_turn) {
        have_turn = turns.Wait(u);
        // Every unit before this one is done: nothing before it is read again. Reading
        // maps whole folios around each access (readahead builds large ones), which
        // per-chunk releases leave behind at chunk edges; drop them all here.
        if (have_turn && u > 0) t.Release({chunks[0].begin, chunks[units[u].first].begin});
      }
      if (!have_turn) return;  // the phase failed elsewhere: drop
      Status st = bufs.FlushTo(&files);
      if (!st.ok()) {
        error.Set(st);
        turns.Fail();
      }
    };
    for (size_t c = units[u].first; c < units[u].second && !problems[u].found; ++c) {
      uint64_t before = row;
      t.ScanChunk(chunks[c], rec, &problems[u], [&](const Record& r) {
        std::string_view key = r.fields[ki].view();
        scans[u].Add(key);
        uint32_t p = PartitionAt(known ? PartitionHashUnder(*known, key, ctx.rules) : PartitionHash(key, ctx.rules), 0, fanout);
        std::string_view body;
        if (!r.has_quote_char) {
          if (!is_y) body = {r.begin, static_cast<size_t>(r.end - r.begin)};
          else if (ki == 0) body = ncols == 1 ? std::string_view() : std::string_view(r.fields[1].data, r.end - r.fields[1].data);
          else if (ki == ncols - 1) body = {r.begin, static_cast<size_t>(key.data() - 1 - r.begin)};
        }
        if (body.data() == nullptr && (r.has_quote_char || (is_y && ki != 0 && ki != ncols - 1))) {
          EncodeFields(r, is_y ? ki : std::string::npos, text);
          body = text;
        }
        AppendPartRecord(bufs.raw(p), ((base + u) << 40) | row++, key, body);
        bufs.Added(p);
      });
      t.Release(chunks[c]);
      ctx.AddProgress(row - before, chunks[c].end - chunks[c].begin);
      if (bufs.framed_bytes() >= flush_bytes) flush();
    }
    rows[u] = row;
    if (problems[u].found) {
      turns.Fail();
      return;
    }
    bufs.SealAll();
    flush();
    turns.Done(u);
  });
  for (size_t u = 0; u < units.size(); ++u)
    if (problems[u].found) return t.Error(problems[u]);
  CM_RETURN_IF_ERROR(error.Get());
  for (size_t u = 0; u < units.size(); ++u) {
    out->scan.Append(scans[u]);
    out->rows += rows[u];
  }
  *unit_base += units.size();
  if (*unit_base >= (uint64_t{1} << 24))
    return Status::Internal(fmt::format("{} has more than 2^24 scan units: raise --memory-limit", t.path()));
  return Status::OK();
}

// Level 0: partitions a whole table, segment by segment (one for a mapped file).
Status PartitionTable(Context& ctx, Table& t, bool is_y, uint32_t fanout, PartitionedSide* out,
                      const KeyMode* known = nullptr) {
  PartitionFiles files(&ctx, is_y ? "y" : "x", fanout);
  uint64_t unit_base = 0;
  CM_RETURN_IF_ERROR(t.Rewind());
  for (;;) {
    CM_RETURN_IF_ERROR(PartitionSegment(ctx, t, is_y, fanout, files, &unit_base, out, known));
    auto more = t.NextSegment();
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  auto parts = files.Close();
  if (!parts.ok()) return parts.status();
  out->parts = std::move(parts.value());
  return Status::OK();
}

// Level > 0: splits one partition file by the next level's hash.
// Level > 0 hashes under the side's known type (PartitionHashUnder), the same for x and y.
Result<std::vector<SpillPart>> Repartition(Context& ctx, const SpillPart& in, KeyMode mode, const std::string& stem,
                                           unsigned level, uint32_t fanout) {
  PartitionFiles files(&ctx, stem, fanout);
  PartitionBuffers bufs(fanout, ctx.block_bytes, ctx.zstd_level);
  CM_RETURN_IF_ERROR(ForEachPartRecord(
      ctx.env, in.path,
      [&](const PartRecord& r) {
        uint32_t p = PartitionAt(PartitionHashUnder(mode, r.key, ctx.rules), level, fanout);
        AppendPartRecord(bufs.raw(p), r.pos, r.key, r.text);
        bufs.Added(p);
      },
      [&] { return bufs.framed_bytes() >= (4u << 20) ? bufs.FlushTo(&files) : Status::OK(); }));
  bufs.SealAll();
  CM_RETURN_IF_ERROR(bufs.FlushTo(&files));
  ctx.env->RemoveFile(in.path);
  return files.Close();
}

// ---- Output ------------------------------------------------------------------

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
    if (raw_.empty()) first_x_ = x_pos;
    PutU64(raw_, x_pos);
    PutU64(raw_, y_pos);
    PutU32(raw_, len);
    raw_.append(x_text);
    if (ctx_->y_has_values) {
      raw_.push_back('\t');
      raw_.append(y_text);
    }
    raw_.push_back('\n');
    ++records_;
    if (raw_.size() >= ctx_->block_bytes) return Seal();
    return Status::OK();
  }
  // A line that already is an output line (intermediate merges).
  Status EmitLine(uint64_t x_pos, uint64_t y_pos, std::string_view line) {
    if (raw_.empty()) first_x_ = x_pos;
    PutU64(raw_, x_pos);
    PutU64(raw_, y_pos);
    PutU32(raw_, static_cast<uint32_t>(line.size()));
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

// ---- Joining one partition in memory -------------------------------------------

// y's records of a partition (or of one block of a hot partition), hashed.
class BuildTable {
 public:
  struct Row {
    uint64_t pos;
    std::string_view key, text;
    uint32_t next;
  };

  BuildTable(KeyMode mode, PandasRules rules) : mode_(mode), rules_(rules), numeric_(IsNumeric(mode)) {}

  void AddBlock(std::string block) { blocks_.push_back(std::move(block)); }

  // Parses the blocks' records and builds the table. false: a malformed record.
  bool Build(uint64_t expected_rows) {
    rows_.reserve(expected_rows);
    for (const std::string& b : blocks_) {
      PartRecords recs(b);
      PartRecord r;
      bool bad = false;
      while (recs.Next(&r, &bad)) rows_.push_back(Row{r.pos, r.key, r.text, kNoRow});
      if (bad) return false;
    }
    size_t n = rows_.size();
    if (numeric_) numeric_table_.emplace(n);
    else text_table_.emplace(n);
    for (size_t i = n; i-- > 0;) {  // last to first: chains end up in file order
      ProbeKey k;
      if (!MakeKey(mode_, rows_[i].key, &k, rules_)) continue;
      rows_[i].next = numeric_ ? numeric_table_->Insert(k.num, k.hash, static_cast<uint32_t>(i))
                               : text_table_->Insert(k.text, k.hash, static_cast<uint32_t>(i));
    }
    // Chain lengths from each row on (so a head's is its key's y count), and x counts per head.
    chain_.assign(n, 0);
    for (size_t i = n; i-- > 0;) chain_[i] = 1 + (rows_[i].next == kNoRow ? 0 : chain_[rows_[i].next]);
    x_count_.assign(n, 0);
    return true;
  }

  void Prefetch(uint64_t hash) const {
    if (numeric_) numeric_table_->Prefetch(hash);
    else text_table_->Prefetch(hash);
  }
  uint32_t Find(const ProbeKey& k) const {
    return numeric_ ? numeric_table_->Find(k.num, k.hash) : text_table_->Find(k.text, k.hash);
  }
  const Row& row(uint32_t i) const { return rows_[i]; }
  uint32_t chain_length(uint32_t head) const { return chain_[head]; }
  size_t distinct_keys() const { return numeric_ ? numeric_table_->size() : text_table_->size(); }
  // A key's identity under the mode: equal keys spelled differently (7, 7.0) have one.
  static std::string Identity(KeyMode mode, PandasRules rules, std::string_view key) {
    ProbeKey k;
    if (!MakeKey(mode, key, &k, rules)) return std::string();
    if (!IsNumeric(mode)) return std::string(k.text);
    std::string id(reinterpret_cast<const char*>(&k.num.bits), 8);
    id.push_back(static_cast<char>(k.num.tag));
    return id;
  }
  void CountX(uint32_t head) { ++x_count_[head]; }
  size_t size() const { return rows_.size(); }

  // Calls f(y key text, x count, y count) for every head an x row found.
  template <class F>
  void ForEachMatchedKey(F&& f) const {
    for (size_t i = 0; i < rows_.size(); ++i)
      if (x_count_[i]) f(rows_[i].key, x_count_[i], chain_[i]);
  }

 private:
  KeyMode mode_;
  PandasRules rules_;
  bool numeric_;
  std::vector<std::string> blocks_;
  std::vector<Row> rows_;
  std::optional<NumericHashTable> numeric_table_;
  std::optional<TextHashTable> text_table_;
  std::vector<uint32_t> chain_, x_count_;
};

// Streams x's partition through a built table: counts, and emits while the
// output-row limit allows.
Status ProbeThrough(Context& ctx, const SpillPart& xp, BuildTable& table, MatchSink* sink) {
  // In small batches: every row's slot is prefetched, then looked up, then its
  // first y row prefetched, then emitted, so the cache misses overlap.
  struct Pending {
    PartRecord r;
    ProbeKey k;
    uint32_t head;
  };
  constexpr size_t kBatch = 16;
  Pending batch[kBatch];
  size_t pending = 0;
  uint64_t block_rows = 0;
  Status emit_status;
  auto flush = [&] {
    for (size_t i = 0; i < pending; ++i) {
      batch[i].head = table.Find(batch[i].k);
      if (batch[i].head != kNoRow) __builtin_prefetch(&table.row(batch[i].head));
    }
    for (size_t i = 0; i < pending && emit_status.ok(); ++i) {
      uint32_t head = batch[i].head;
      if (head == kNoRow) continue;
      table.CountX(head);
      block_rows += table.chain_length(head);
      if (!ctx.emitting()) continue;
      for (uint32_t j = head; j != kNoRow && emit_status.ok(); j = table.row(j).next)
        emit_status = sink->Emit(batch[i].r.pos, table.row(j).pos, batch[i].r.text, table.row(j).text);
    }
    pending = 0;
  };
  return ForEachPartRecord(
      ctx.env, xp.path,
      [&](const PartRecord& r) {
        Pending& p = batch[pending];
        if (!MakeKey(ctx.x_mode, r.key, &p.k, ctx.rules)) return;
        table.Prefetch(p.k.hash);
        p.r = r;
        if (++pending == kBatch) flush();
      },
      [&] {
        flush();  // records point into the block: finish them before the next one
        ctx.AddOutputRows(block_rows);
        block_rows = 0;
        return emit_status;
      });
}

// Reads blocks of y into the table until `budget` (at least one block); *more_left when blocks remain.
Status LoadBlocks(SpillReader* reader, BuildTable* table, uint64_t budget, uint64_t* records, bool* more_left) {
  std::string block;
  uint32_t n;
  uint64_t bytes = 0;
  *records = 0;
  *more_left = false;
  while (bytes + kBytesPerBuildRow * *records < budget || *records == 0) {
    auto more = reader->Next(&block, &n);
    if (!more.ok()) return more.status();
    if (!*more) return Status::OK();
    bytes += block.size();
    *records += n;
    table->AddBlock(std::move(block));
    block = std::string();
  }
  *more_left = true;
  return Status::OK();
}

// Joins a partition whose y side fits: one table, one pass over x.
// Loads a partition's whole y side into *table, builds it, and counts its distinct keys.
Status LoadWholePartition(Context& ctx, const SpillPart& yp, BuildTable* table) {
  auto reader = SpillReader::Open(ctx.env, yp.path);
  if (!reader.ok()) return reader.status();
  uint64_t records;
  bool more_left;
  CM_RETURN_IF_ERROR(LoadBlocks(reader->get(), table, UINT64_MAX, &records, &more_left));
  if (!table->Build(records)) return BadRecord(yp.path);
  ctx.y_distinct_keys.fetch_add(table->distinct_keys(), std::memory_order_relaxed);
  return Status::OK();
}

Status JoinInMemory(Context& ctx, const SpillPart& yp, const SpillPart& xp, MatchSink* sink, KeyStats* keys) {
  BuildTable table(ctx.y_mode, ctx.rules);
  CM_RETURN_IF_ERROR(LoadWholePartition(ctx, yp, &table));
  CM_RETURN_IF_ERROR(ProbeThrough(ctx, xp, table, sink));
  table.ForEachMatchedKey([&](std::string_view key, uint64_t cx, uint64_t cy) { keys->Add(key, cx, cy); });
  return Status::OK();
}

// Joins a partition too big for memory that cannot be split (a hot key): y in
// blocks that fit, all of x through each. Each block's matches form their own
// sorted run (matches of one x row from block 2 follow block 1's in y order).
Status JoinByBlocks(Context& ctx, const SpillPart& yp, const SpillPart& xp, Outputs* outs, KeyStats* keys) {
  auto reader = SpillReader::Open(ctx.env, yp.path);
  if (!reader.ok()) return reader.status();
  // Counts of the same key over blocks: x count is the same in each, y counts add up.
  std::unordered_map<std::string, HotKey> folded;
  std::unordered_set<std::string> distinct;
  for (bool more_left = true; more_left;) {
    BuildTable table(ctx.y_mode, ctx.rules);
    uint64_t records;
    CM_RETURN_IF_ERROR(LoadBlocks(reader->get(), &table, ctx.task_budget, &records, &more_left));
    if (records == 0) break;
    if (!table.Build(records)) return BadRecord(yp.path);
    std::unique_ptr<MatchSink> sink;
    if (ctx.options->any_order) sink = std::make_unique<DirectSink>(&ctx, outs);
    else sink = std::make_unique<RunSink>(&ctx, outs);
    CM_RETURN_IF_ERROR(ProbeThrough(ctx, xp, table, sink.get()));
    CM_RETURN_IF_ERROR(sink->Finish());
    for (uint32_t i = 0; i < table.size(); ++i) {  // y's distinct keys, once over all blocks
      std::string id = BuildTable::Identity(ctx.y_mode, ctx.rules, table.row(i).key);
      if (!id.empty()) distinct.insert(std::move(id));
    }
    table.ForEachMatchedKey([&](std::string_view key, uint64_t cx, uint64_t cy) {
      std::string id = BuildTable::Identity(ctx.y_mode, ctx.rules, key);
      HotKey& h = folded[id];
      if (h.key.empty()) h.key = std::string(key);
      h.x_rows = cx;  // the same x rows probe every block
      h.y_rows += cy;
    });
  }
  for (auto& [id, h] : folded) keys->Add(h.key, h.x_rows, h.y_rows);
  ctx.y_distinct_keys.fetch_add(distinct.size(), std::memory_order_relaxed);
  return Status::OK();
}

// ---- The join phase: a pool of workers over a queue of tasks -------------------------

struct JoinTask {
  SpillPart y, x;
  unsigned level = 0;
  bool hot = false;  // splitting did not divide it: if still too big, join by blocks
};

constexpr unsigned kMaxLevels = 6;

class JoinPhase {
 public:
  JoinPhase(Context* ctx, Outputs* outs) : ctx_(ctx), outs_(outs) {}

  Status Run(std::vector<JoinTask> tasks) {
    for (auto& t : tasks) queue_.push_back(std::move(t));
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < ctx_->threads; ++w) pool.emplace_back([this] { Work(); });
    for (auto& t : pool) t.join();
    for (auto& k : keys_) k.AddTo(ctx_->stats);
    return error_.Get();
  }

 private:
  void Work() {
    KeyStats keys;
    for (;;) {
      JoinTask task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty() || active_ == 0 || error_.failed(); });
        if (queue_.empty() || error_.failed()) {
          cv_.notify_all();
          break;
        }
        task = std::move(queue_.front());
        queue_.pop_front();
        ++active_;
      }
      Status st = RunTask(task, &keys);
      if (!st.ok()) error_.Set(st);
      {
        std::lock_guard<std::mutex> lock(mu_);
        --active_;
        cv_.notify_all();
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    keys_.push_back(std::move(keys));
  }

  void Push(JoinTask t) {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(t));
    cv_.notify_all();
  }

  Status RunTask(const JoinTask& t, KeyStats* keys) {
    auto remove = [&] {
      if (!t.y.path.empty()) ctx_->env->RemoveFile(t.y.path);
      if (!t.x.path.empty()) ctx_->env->RemoveFile(t.x.path);
    };
    if (t.y.records == 0 || t.x.records == 0) {  // nothing can match
      Status st = t.y.records && BuildBytes(t.y) <= ctx_->task_budget ? CountDistinctKeys(t.y) : Status::OK();
      remove();
      return st;
    }
    NoteLevel(t.level);
    if (BuildBytes(t.y) > ctx_->task_budget) {
      // Too big for memory: split by the next level's hash, unless splitting cannot help.
      if (t.hot || t.level + 1 >= kMaxLevels || t.y.records == 1) return RunHot(t, keys);
      uint32_t fanout = FanoutFor(*ctx_, BuildBytes(t.y));
      unsigned level = t.level + 1;
      std::string stem = fmt::format("l{}", level);
      auto ys = Repartition(*ctx_, t.y, ctx_->y_mode, "y" + stem, level, fanout);
      if (!ys.ok()) return ys.status();
      auto xs = Repartition(*ctx_, t.x, ctx_->x_mode, "x" + stem, level, fanout);
      if (!xs.ok()) return xs.status();
      for (uint32_t p = 0; p < fanout; ++p) {
        JoinTask child{(*ys)[p], (*xs)[p], level, false};
        // No split at all: every row shares the hash at two levels — one key (or a few equal as doubles).
        child.hot = child.y.records == t.y.records;
        Push(std::move(child));
      }
      return Status::OK();
    }
    ctx_->stats_partitions.fetch_add(1, std::memory_order_relaxed);
    std::unique_ptr<MatchSink> sink;
    if (ctx_->options->any_order) sink = std::make_unique<DirectSink>(ctx_, outs_);
    else sink = std::make_unique<RunSink>(ctx_, outs_);
    CM_RETURN_IF_ERROR(JoinInMemory(*ctx_, t.y, t.x, sink.get(), keys));
    CM_RETURN_IF_ERROR(sink->Finish());
    ctx_->AddProgress(t.x.records + t.y.records, t.x.raw_bytes + t.y.raw_bytes);
    remove();
    return Status::OK();
  }

  Status RunHot(const JoinTask& t, KeyStats* keys) {
    ctx_->stats_partitions.fetch_add(1, std::memory_order_relaxed);
    ctx_->stats_nested.fetch_add(1, std::memory_order_relaxed);
    CM_RETURN_IF_ERROR(JoinByBlocks(*ctx_, t.y, t.x, outs_, keys));
    ctx_->AddProgress(t.x.records + t.y.records, t.x.raw_bytes + t.y.raw_bytes);
    ctx_->env->RemoveFile(t.y.path);
    ctx_->env->RemoveFile(t.x.path);
    return Status::OK();
  }

  // y's distinct keys of a partition no x row reaches (for the report; only when it fits).
  Status CountDistinctKeys(const SpillPart& yp) {
    BuildTable table(ctx_->y_mode, ctx_->rules);
    return LoadWholePartition(*ctx_, yp, &table);
  }

  void NoteLevel(unsigned level) {
    unsigned cur = ctx_->stats_levels.load();
    while (level + 1 > cur && !ctx_->stats_levels.compare_exchange_weak(cur, level + 1)) {}
  }

  Context* ctx_;
  Outputs* outs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<JoinTask> queue_;
  unsigned active_ = 0;
  FirstError error_;
  std::vector<KeyStats> keys_;
};

// ---- The merge phase: runs back into the script's order -------------------------
//
// Every run is sorted on (x position, y position). The final merge splits the
// x positions into ranges of about equal output, one merger thread per range,
// each reading every run from its range's start (RunFile::blocks). A writer
// (the calling thread) appends the ranges to OUT in order: range 0 as it is
// merged, a later range from the temp file it filled while waiting for its
// turn, then as it is merged. So both cores merge, and the output is the same
// bytes for any number of ranges.

// x positions [lo, hi) (hi == kNoEnd: to the end).
struct XRange {
  static constexpr uint64_t kNoEnd = UINT64_MAX;
  uint64_t lo = 0, hi = kNoEnd;
};

// Reads one run's output records in order, within an x range.
class RunCursor {
 public:
  Status Open(Env* env, const RunFile& run, XRange range) {
    path_ = run.path;
    range_ = range;
    auto r = SpillReader::Open(env, path_);
    if (!r.ok()) return r.status();
    reader_ = std::move(r.value());
    if (range.lo > 0 && !run.blocks.empty()) {
      // The last block starting below lo: rows at lo may begin in it.
      auto it = std::lower_bound(run.blocks.begin(), run.blocks.end(), range.lo,
                                 [](const RunBlock& b, uint64_t x) { return b.first_x < x; });
      if (it != run.blocks.begin()) --it;
      reader_->Seek(it->offset, static_cast<uint64_t>(it - run.blocks.begin()));
    }
    return Status::OK();
  }
  // The next record of the range into x, y, line; false at its end.
  Result<bool> Next() {
    for (;;) {
      while (p_ == end_) {
        uint32_t n;
        auto more = reader_->Next(&block_, &n);
        if (!more.ok()) return more.status();
        if (!*more) return false;
        p_ = block_.data();
        end_ = p_ + block_.size();
      }
      if (end_ - p_ < static_cast<ptrdiff_t>(kOutHeader)) return BadRecord(path_);
      x = GetU64(p_);
      y = GetU64(p_ + 8);
      uint32_t len = GetU32(p_ + 16);
      if (static_cast<size_t>(end_ - p_) < kOutHeader + len) return BadRecord(path_);
      line = {p_ + kOutHeader, len};
      p_ += kOutHeader + len;
      if (x < range_.lo) continue;  // before the range, in the block it starts in
      if (range_.hi != XRange::kNoEnd && x >= range_.hi) {
        p_ = end_ = nullptr;
        return false;
      }
      return true;
    }
  }
  uint64_t x = 0, y = 0;
  std::string_view line;

 private:
  std::string path_;
  XRange range_;
  std::unique_ptr<SpillReader> reader_;
  std::string block_;
  const char* p_ = nullptr;
  const char* end_ = nullptr;
};

// Merges the runs' records in `range` on (x position, y position), calling
// emit(x, y, line) in order.
template <class Emit>
Status MergeRuns(Context& ctx, const std::vector<RunFile>& runs, XRange range, Emit&& emit) {
  std::vector<RunCursor> cursors(runs.size());
  struct Head {
    uint64_t x, y;
    uint32_t run;
    bool operator>(const Head& o) const { return x != o.x ? x > o.x : y > o.y; }
  };
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heap;
  for (size_t i = 0; i < runs.size(); ++i) {
    CM_RETURN_IF_ERROR(cursors[i].Open(ctx.env, runs[i], range));
    auto more = cursors[i].Next();
    if (!more.ok()) return more.status();
    if (*more) heap.push(Head{cursors[i].x, cursors[i].y, static_cast<uint32_t>(i)});
  }
  while (!heap.empty()) {
    uint32_t i = heap.top().run;
    heap.pop();
    RunCursor& c = cursors[i];
    // Runs are sorted: keep taking from this one while it stays ahead of the others.
    for (;;) {
      CM_RETURN_IF_ERROR(emit(c.x, c.y, c.line));
      auto more = c.Next();
      if (!more.ok()) return more.status();
      if (!*more) break;
      if (!heap.empty() && Head{c.x, c.y, i} > heap.top()) {
        heap.push(Head{c.x, c.y, i});
        break;
      }
    }
  }
  return Status::OK();
}

// Split points that cut the runs' output into about `ways` equal parts, from the
// blocks' first x positions and sizes. Fewer ranges when the output is too
// concentrated to split (one x row matching most of y).
std::vector<XRange> SplitByX(const std::vector<RunFile>& runs, unsigned ways) {
  std::vector<RunBlock> blocks;
  uint64_t total = 0;
  for (const RunFile& r : runs)
    for (const RunBlock& b : r.blocks) {
      blocks.push_back(b);
      total += b.raw_bytes;
    }
  std::sort(blocks.begin(), blocks.end(), [](const RunBlock& a, const RunBlock& b) { return a.first_x < b.first_x; });
  std::vector<XRange> ranges(1);
  uint64_t seen = 0;
  for (const RunBlock& b : blocks) {
    const uint64_t target = total / ways * ranges.size();
    if (ranges.size() < ways && seen >= target && b.first_x > ranges.back().lo) {
      ranges.back().hi = b.first_x;
      ranges.push_back(XRange{b.first_x, XRange::kNoEnd});
    }
    seen += b.raw_bytes;
  }
  return ranges;
}

// The output of one range of the final merge, from its merger to the writer.
// Until the writer reaches the range, the merger appends its buffers to a temp
// file (spill blocks: checksummed, compressed like the runs); from then on it
// hands them over directly, two at most in flight.
class RangeOutput {
 public:
  explicit RangeOutput(Context* ctx) : ctx_(ctx) {}
  ~RangeOutput() {
    if (file_) file_->Close();
    if (!file_path_.empty()) ctx_->env->RemoveFile(file_path_);
  }

  // Merger: the next buffer of output lines.
  Status Put(std::string buf) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!writer_status_.ok()) return writer_status_;
    if (wanted_ && !streaming_) {
      CM_RETURN_IF_ERROR(CloseFile());  // complete, for the writer to read
      streaming_ = true;
      cv_.notify_all();
    }
    if (!streaming_) return AppendToFile(buf);
    cv_.wait(lock, [&] { return queue_.size() < 2 || !writer_status_.ok(); });
    if (!writer_status_.ok()) return writer_status_;
    queue_.push_back(std::move(buf));
    cv_.notify_all();
    return Status::OK();
  }
  // Merger: no more buffers; `st` is how the merge ended.
  void Close(Status st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (st.ok() && !streaming_) st = CloseFile();
    merger_status_ = std::move(st);
    closed_ = true;
    cv_.notify_all();
  }
  // Writer: appends the whole range to `out`, in order, as it comes.
  Status DrainInto(AtomicOutput* out) {
    std::unique_lock<std::mutex> lock(mu_);
    wanted_ = true;
    cv_.wait(lock, [&] { return streaming_ || closed_; });
    if (!merger_status_.ok()) return merger_status_;
    if (!file_path_.empty()) {
      lock.unlock();
      Status st = CopyFile(out);
      lock.lock();
      if (!st.ok()) return Fail(std::move(st));
    }
    for (;;) {
      cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
      if (queue_.empty()) return merger_status_;
      std::string piece = std::move(queue_.front());
      queue_.pop_front();
      cv_.notify_all();
      lock.unlock();
      Status st = out->Append(piece);
      lock.lock();
      if (!st.ok()) return Fail(std::move(st));
    }
  }
  // Writer: stop this range's merger (the output failed, or an earlier range did).
  void Abandon(const Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    Fail(st);
  }

 private:
  Status Fail(Status st) {
    writer_status_ = st;
    cv_.notify_all();
    return st;
  }
  // Under mu_ (the writer does not touch the file until streaming_ or closed_).
  Status AppendToFile(std::string_view buf) {
    if (!file_) {
      file_path_ = ctx_->dir->NewPath("range");
      auto w = SpillWriter::Create(ctx_->env, file_path_);
      if (!w.ok()) return w.status();
      file_ = std::move(w.value());
    }
    return file_->AppendBlock(buf, 0, ctx_->zstd_level);
  }
  Status CloseFile() {
    if (!file_) return Status::OK();
    Status st = file_->Close();
    ctx_->CountSpill(*file_);
    file_.reset();
    return st;
  }
  Status CopyFile(AtomicOutput* out) {
    auto reader = SpillReader::Open(ctx_->env, file_path_);
    if (!reader.ok()) return reader.status();
    std::string block;
    uint32_t n;
    for (;;) {
      auto more = (*reader)->Next(&block, &n);
      if (!more.ok()) return more.status();
      if (!*more) break;
      CM_RETURN_IF_ERROR(out->Append(block));
    }
    reader->reset();
    ctx_->env->RemoveFile(file_path_);
    file_path_.clear();
    return Status::OK();
  }

  Context* ctx_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool wanted_ = false, streaming_ = false, closed_ = false;
  Status merger_status_, writer_status_;
  std::deque<std::string> queue_;
  std::unique_ptr<SpillWriter> file_;
  std::string file_path_;
};

// The final merge: one merger thread per range, the calling thread writes.
Status MergeRangesIntoOutput(Context& ctx, const std::vector<RunFile>& runs, const std::vector<XRange>& ranges,
                             AtomicOutput* out) {
  std::vector<std::unique_ptr<RangeOutput>> parts;
  for (size_t k = 0; k < ranges.size(); ++k) parts.push_back(std::make_unique<RangeOutput>(&ctx));
  const size_t buffer_bytes = std::clamp<size_t>(ctx.memory_limit / 32 / ranges.size(), 64u << 10, 4u << 20);
  std::vector<std::thread> mergers;
  for (size_t k = 0; k < ranges.size(); ++k)
    mergers.emplace_back([&, k] {
      RangeOutput& part = *parts[k];
      std::string buf;
      uint64_t lines = 0, bytes = 0;
      Status st = MergeRuns(ctx, runs, ranges[k], [&](uint64_t, uint64_t, std::string_view line) {
        buf.append(line);
        bytes += line.size();
        if (++lines == 65536) {
          ctx.AddProgress(lines, bytes);
          lines = bytes = 0;
        }
        if (buf.size() < buffer_bytes) return Status::OK();
        Status put = part.Put(std::move(buf));
        buf = std::string();
        buf.reserve(buffer_bytes + (64u << 10));
        return put;
      });
      ctx.AddProgress(lines, bytes);
      if (st.ok() && !buf.empty()) st = part.Put(std::move(buf));
      part.Close(std::move(st));
    });
  Status st;
  for (size_t k = 0; k < parts.size(); ++k) {
    if (st.ok()) st = parts[k]->DrainInto(out);
    if (!st.ok()) parts[k]->Abandon(st);
  }
  for (auto& t : mergers) t.join();
  return st;
}

// Merges all runs into OUT; first in groups when there are more runs than the
// memory allows cursors for. Every merger holds a cursor per run, so the final
// merge runs in as many ranges as the threads and the cursors' memory allow.
Status MergeIntoOutput(Context& ctx, Outputs* outs, AtomicOutput* out, unsigned* ranges_used) {
  std::vector<RunFile> runs = std::move(outs->runs);
  const size_t fan_in = std::clamp<size_t>(ctx.memory_limit / (4 * ctx.block_bytes + 1), 8, 512);
  // Already grouping: group down to what every thread can merge at once.
  const size_t group = runs.size() > fan_in ? std::max<size_t>(2, fan_in / ctx.threads) : fan_in;
  while (runs.size() > group) {
    std::vector<std::vector<RunFile>> groups;
    for (size_t i = 0; i < runs.size(); i += group)
      groups.emplace_back(runs.begin() + i, runs.begin() + std::min(runs.size(), i + group));
    Outputs merged;
    FirstError error;
    ParallelFor(groups.size(), ctx.threads, [&](size_t g, unsigned) {
      if (error.failed()) return;
      RunSink sink(&ctx, &merged);
      Status st = MergeRuns(ctx, groups[g], XRange{}, [&](uint64_t x, uint64_t y, std::string_view line) {
        return sink.EmitLine(x, y, line);
      });
      if (st.ok()) st = sink.Finish();
      if (!st.ok()) error.Set(st);
      for (const RunFile& r : groups[g]) ctx.env->RemoveFile(r.path);
    });
    CM_RETURN_IF_ERROR(error.Get());
    runs = std::move(merged.runs);
  }
  const unsigned ways = static_cast<unsigned>(
      std::clamp<size_t>(fan_in / std::max<size_t>(1, runs.size()), 1, ctx.threads));
  const std::vector<XRange> ranges = SplitByX(runs, ways);
  *ranges_used = static_cast<unsigned>(ranges.size());
  Status st = MergeRangesIntoOutput(ctx, runs, ranges, out);
  for (const RunFile& r : runs) ctx.env->RemoveFile(r.path);
  return st;
}

uint64_t SampleRows(const Table& t, uint64_t bytes) {
  std::string_view d = t.data();
  size_t sample = std::min<size_t>(d.size(), 4u << 20);
  size_t lines = std::count(d.data(), d.data() + sample, '\n');
  if (sample == 0) return 0;
  return static_cast<uint64_t>(static_cast<double>(bytes) * (lines + 1) / static_cast<double>(sample)) + 1;
}

}  // namespace

uint64_t EstimateInMemoryJoinBytes(const Table& y, unsigned threads, size_t chunk_bytes) {
  uint64_t bytes = y.size();
  // y's bytes stay mapped; per row a 20-byte record and a hash slot (~16 bytes at 0.75 load);
  // the probe holds up to 2 * threads + 2 chunks of output in flight.
  return bytes + 40 * SampleRows(y, bytes) + (2 * threads + 2) * chunk_bytes * 3;
}

Status OutputRowLimitError(const MergeStats& s, uint64_t limit) {
  std::string hot;
  for (const HotKey& k : s.hottest_keys)
    hot += fmt::format("\n  {:>12} rows  ID '{}' ({} rows in x × {} in y)", k.output_rows(), k.key, k.x_rows, k.y_rows);
  return Status::InvalidInput(fmt::format(
      "the result would have {} rows, more than --max-output-rows {}; nothing was written. The keys that "
      "produce the most rows:{}\nIDs repeated on both sides multiply: check that the key column is the right one "
      "(--key), remove the duplicates, or raise --max-output-rows.",
      s.output_rows, limit, hot));
}

Status RunGraceJoin(Env* env, Table& x, Table& y, const MergeOptions& o, unsigned threads,
                    const std::string& header, AtomicOutput* out, MergeStats* stats) {
  const uint64_t limit = o.memory_limit ? o.memory_limit : DefaultMemoryLimit();
  const std::string parent = o.temp_dir.empty() ? DefaultTempParent() : o.temp_dir;
  auto dir = SpillDirectory::Create(parent, &stats->reclaimed_temp_bytes);
  if (!dir.ok()) return dir.status();

  Context ctx;
  ctx.env = env;
  ctx.options = &o;
  ctx.rules = o.pandas;
  ctx.threads = std::max(1u, threads);
  ctx.dir = dir->get();
  ctx.stats = stats;
  ctx.progress = o.progress;
  ctx.memory_limit = limit;
  ctx.task_budget = std::max<uint64_t>(limit / 2 / ctx.threads, 4u << 10);
  ctx.max_fanout = o.spill_fanout ? std::max(2u, o.spill_fanout) : 256;
  // Every open partition costs its file's write buffer and a block being filled per
  // worker: under a small limit, fewer partitions per level (and more levels).
  ctx.block_bytes = std::clamp<size_t>(limit / (16 * ctx.threads * 64), 16u << 10, 1u << 20);
  const uint64_t per_partition = kSpillWriteBuffer + ctx.block_bytes * ctx.threads;
  ctx.max_fanout = static_cast<uint32_t>(std::clamp<uint64_t>(limit / 4 / per_partition, 2, ctx.max_fanout));
  ctx.y_has_values = y.column_names().size() > 1;
  // Spill files take about 1.5x the inputs (partitions, then runs): compress them
  // when room is short, else spend the CPU on the join.
  const uint64_t input_bytes = x.size() + y.size();
  switch (o.spill_compression) {
    case MergeOptions::SpillCompression::kZstd: ctx.zstd_level = kSpillZstdLevel; break;
    case MergeOptions::SpillCompression::kNone: ctx.zstd_level = kSpillStoreRaw; break;
    case MergeOptions::SpillCompression::kAuto:
      ctx.zstd_level = (*dir)->FreeBytes() < 4 * input_bytes ? kSpillZstdLevel : kSpillStoreRaw;
  }
  stats->spill_compressed = ctx.zstd_level != kSpillStoreRaw;
  const uint64_t y_bytes = y.size(), x_bytes = x.size();
  const uint64_t y_rows_guess = SampleRows(y, y_bytes);
  // Enough partitions that each fits a worker's memory, and more when y is big enough: a
  // partition's hash table near cache size probes several times faster than one of
  // hundreds of MiB (the radix-join observation), and more files cost little.
  const uint64_t y_build_bytes = y_bytes + 16 * y_rows_guess + kBytesPerBuildRow * y_rows_guess;
  const uint32_t fanout0 = std::max<uint32_t>(
      FanoutFor(ctx, y_build_bytes),
      static_cast<uint32_t>(std::min<uint64_t>(ctx.max_fanout, y_build_bytes / kCacheFriendlyPartition)));
  stats->out_of_core = true;
  stats->memory_limit = limit;
  stats->x_bytes = x_bytes;
  stats->y_bytes = y_bytes;

  PartitionedSide ys, xs;
  ys.scan = xs.scan = KeyScan(ctx.rules);
  {
    PhaseTimer phase(ctx.progress, &stats->phases, "partition y", y_bytes, 0);
    CM_RETURN_IF_ERROR(PartitionTable(ctx, y, true, fanout0, &ys));
    phase.End(ys.rows, y.size());
  }
  {
    PhaseTimer phase(ctx.progress, &stats->phases, "partition x", x_bytes, 0);
    CM_RETURN_IF_ERROR(PartitionTable(ctx, x, false, fanout0, &xs));
    phase.End(xs.rows, x.size());
  }
  // Freed buffers of the phase go back to the system, not to the next phase's peak.
  malloc_trim(0);
  CM_RETURN_IF_ERROR(CheckPandasRulesSupported(ys.scan, y.path(), ctx.rules));
  CM_RETURN_IF_ERROR(CheckPandasRulesSupported(xs.scan, x.path(), ctx.rules));
  ctx.y_mode = ys.scan.Decide();
  ctx.x_mode = xs.scan.Decide();
  // A float64 file with an integer spelling pandas reads otherwise as a float
  // ("000000000000000007" is 0.0) was partitioned by the integer's value: partition it
  // again, now that its type is known (rare; costs one more pass over that input).
  auto repartition = [&](Table& t, bool is_y, PartitionedSide& side, KeyMode mode) -> Status {
    if (mode != KeyMode::kFloat || !side.scan.lossy_int()) return Status::OK();
    for (const SpillPart& part : side.parts) env->RemoveFile(part.path);
    side = PartitionedSide{};
    side.scan = KeyScan(ctx.rules);
    PhaseTimer phase(ctx.progress, &stats->phases, is_y ? "partition y again" : "partition x again", t.size(), 0);
    CM_RETURN_IF_ERROR(PartitionTable(ctx, t, is_y, fanout0, &side, &mode));
    phase.End(side.rows, t.size());
    return Status::OK();
  };
  CM_RETURN_IF_ERROR(repartition(y, true, ys, ctx.y_mode));
  CM_RETURN_IF_ERROR(repartition(x, false, xs, ctx.x_mode));
  stats->y_rows = ys.rows;
  stats->x_rows = xs.rows;
  stats->y_mode = ctx.y_mode;
  stats->x_mode = ctx.x_mode;

  Outputs outs;
  outs.out = out;
  CM_RETURN_IF_ERROR(out->Append(header));
  // A number never equals a text: with one numeric and one text file nothing matches.
  if (IsNumeric(ctx.x_mode) == IsNumeric(ctx.y_mode) && ys.rows && xs.rows) {
    std::vector<JoinTask> tasks;
    uint64_t spilled_rows = 0, spilled_raw = 0;
    for (uint32_t p = 0; p < fanout0; ++p) {
      tasks.push_back(JoinTask{ys.parts[p], xs.parts[p], 0, false});
      spilled_rows += ys.parts[p].records + xs.parts[p].records;
      spilled_raw += ys.parts[p].raw_bytes + xs.parts[p].raw_bytes;
    }
    PhaseTimer phase(ctx.progress, &stats->phases, "join", spilled_raw, spilled_rows);
    JoinPhase join(&ctx, &outs);
    Status st = join.Run(std::move(tasks));
    stats->output_rows = ctx.output_rows.load();
    phase.End(stats->output_rows, 0);
    CM_RETURN_IF_ERROR(st);
  }
  stats->partitions = ctx.stats_partitions.load();
  stats->y_distinct_keys = ctx.y_distinct_keys.load();
  stats->nested_loop_keys = ctx.stats_nested.load();
  stats->spill_levels = ctx.stats_levels.load();
  if (o.max_output_rows && stats->output_rows > o.max_output_rows) {
    stats->spilled_bytes = ctx.spilled_bytes.load();
    stats->spill_files = ctx.spill_files.load();
    return OutputRowLimitError(*stats, o.max_output_rows);
  }
  malloc_trim(0);
  if (!o.any_order && !outs.runs.empty()) {
    PhaseTimer phase(ctx.progress, &stats->phases, "merge", 0, stats->output_rows);
    CM_RETURN_IF_ERROR(MergeIntoOutput(ctx, &outs, out, &stats->merge_ranges));
    phase.End(stats->output_rows, 0);
  }
  stats->spilled_bytes = ctx.spilled_bytes.load();
  stats->spill_files = ctx.spill_files.load();
  return Status::OK();
}

}  // namespace cloudmerge
