// Partitioning (partition.h): the writers of partition files and the parallel
// scan that feeds them in file order.
#include "cloudmerge/engine/out_of_core/partition.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "cloudmerge/base/parallel.h"
#include "cloudmerge/engine/join_keys.h"

namespace cloudmerge::ooc {
namespace {

// The spill files of one side at one level: fanout files, created on first use.
class PartitionFiles {
 public:
  PartitionFiles(Context* ctx, std::string stem, uint32_t fanout) : ctx_(ctx), stem_(std::move(stem)), writers_(fanout), parts_(fanout) {}

  // Appends framed blocks holding `records` records, `raw` raw bytes to partition p.
  Status Append(uint32_t p, std::string_view framed, uint64_t records, uint64_t raw) {
    if (framed.empty()) return Status::OK();
    CM_RETURN_IF_ERROR(Open(p));
    parts_[p].records += records;
    parts_[p].raw_bytes += raw;
    return writers_[p]->AppendFramed(framed);
  }
  // Appends one block to be stored raw, from the caller's bytes (no framed copy).
  Status AppendRaw(uint32_t p, std::string_view raw, uint32_t records) {
    CM_RETURN_IF_ERROR(Open(p));
    parts_[p].records += records;
    parts_[p].raw_bytes += raw.size();
    return writers_[p]->AppendBlock(raw, records, kSpillStoreRaw);
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
  // Abandons and removes every file: the scan that wrote them starts over.
  void Discard() {
    for (uint32_t p = 0; p < writers_.size(); ++p) {
      if (!writers_[p]) continue;
      writers_[p].reset();
      ctx_->env->RemoveFile(parts_[p].path);
    }
    parts_.assign(parts_.size(), SpillPart{});
  }

 private:
  Status Open(uint32_t p) {
    if (writers_[p]) return Status::OK();
    parts_[p].path = ctx_->dir->NewPath(fmt::format("{}-p{}", stem_, p));
    auto w = SpillWriter::Create(ctx_->env, parts_[p].path);
    if (!w.ok()) return w.status();
    writers_[p] = std::move(w.value());
    return Status::OK();
  }
  Context* ctx_;
  std::string stem_;
  std::vector<std::unique_ptr<SpillWriter>> writers_;
  std::vector<SpillPart> parts_;
};

// Per-partition raw buffers that become blocks when full: compressed (framed) by
// the worker when spill is compressed, else kept as they are and written with
// their header (the buffer itself is sealed; a spare takes its place).
class PartitionBuffers {
 public:
  PartitionBuffers(uint32_t fanout, size_t block_bytes, int zstd_level)
      : raw_(fanout), writers_(fanout), records_(fanout, 0), framed_(fanout), framed_records_(fanout, 0), framed_raw_(fanout, 0),
        sealed_(fanout), block_bytes_(block_bytes), zstd_level_(zstd_level) {}

  // Appends one record to partition p's block (sealed when full).
  void Append(uint32_t p, uint64_t pos, std::string_view key, std::string_view text) {
    std::string& block = raw_[p];
    writers_[p].Append(block, pos, key, text);
    ++records_[p];
    if (block.size() >= block_bytes_) return Seal(p);
    // The line after this block's end, asked for writing now: with hundreds of
    // blocks filled in turn, the line a record starts is otherwise fetched from
    // memory (read for ownership) just as it is written, and the append waits.
    // By the time this block's next record comes, the line is in the cache.
    __builtin_prefetch(block.data() + block.size() + 64, 1, 3);
  }
  void SealAll() {
    for (uint32_t p = 0; p < raw_.size(); ++p)
      if (records_[p]) Seal(p);
  }
  size_t framed_bytes() const { return framed_total_; }
  // Empties every buffer (keeping their memory).
  void Clear() {
    for (uint32_t p = 0; p < raw_.size(); ++p) {
      raw_[p].clear();
      writers_[p].Reset();
      records_[p] = 0;
      framed_[p].clear();
      framed_records_[p] = framed_raw_[p] = 0;
      for (Sealed& b : sealed_[p]) {
        b.raw.clear();
        spares_.push_back(std::move(b.raw));
      }
      sealed_[p].clear();
    }
    framed_total_ = 0;
  }
  // Hands the framed blocks to files and forgets them.
  Status FlushTo(PartitionFiles* files) {
    for (uint32_t p = 0; p < framed_.size(); ++p) {
      CM_RETURN_IF_ERROR(files->Append(p, framed_[p], framed_records_[p], framed_raw_[p]));
      framed_[p].clear();
      framed_records_[p] = framed_raw_[p] = 0;
      for (Sealed& b : sealed_[p]) {
        CM_RETURN_IF_ERROR(files->AppendRaw(p, b.raw, b.records));
        b.raw.clear();
        spares_.push_back(std::move(b.raw));
      }
      sealed_[p].clear();
    }
    framed_total_ = 0;
    return Status::OK();
  }

 private:
  struct Sealed {
    std::string raw;
    uint32_t records;
  };
  void Seal(uint32_t p) {
    writers_[p].Reset();  // the next block's positions start afresh
    if (zstd_level_ == kSpillStoreRaw) {
      framed_total_ += raw_[p].size();
      sealed_[p].push_back(Sealed{std::move(raw_[p]), static_cast<uint32_t>(records_[p])});
      std::string next;
      if (spares_.empty()) {
        next.reserve(block_bytes_ + (block_bytes_ >> 2));  // filled without regrowing (and copying)
      } else {
        next = std::move(spares_.back());
        spares_.pop_back();
      }
      raw_[p] = std::move(next);
      records_[p] = 0;
      return;
    }
    size_t before = framed_[p].size();
    EncodeSpillBlock(raw_[p], static_cast<uint32_t>(records_[p]), zstd_level_, &framed_[p]);
    framed_total_ += framed_[p].size() - before;
    framed_records_[p] += records_[p];
    framed_raw_[p] += raw_[p].size();
    raw_[p].clear();
    records_[p] = 0;
  }
  std::vector<std::string> raw_;
  std::vector<PartRecordWriter> writers_;  // per partition: the position the next record's difference is from
  std::vector<uint64_t> records_;
  std::vector<std::string> framed_;
  std::vector<uint64_t> framed_records_, framed_raw_;
  std::vector<std::vector<Sealed>> sealed_;  // raw blocks, in order, per partition
  std::vector<std::string> spares_;          // emptied buffers, their memory kept
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

// Units of consecutive chunks ([first chunk, end chunk)): big enough to amortise
// the turn, at most `unit_target` bytes unless one chunk is bigger.
std::vector<std::pair<size_t, size_t>> GroupChunks(const std::vector<ChunkRange>& chunks, size_t unit_target) {
  std::vector<std::pair<size_t, size_t>> units;
  for (size_t c = 0; c < chunks.size();) {
    size_t e = c, bytes = 0;
    while (e < chunks.size() && (e == c || bytes + (chunks[e].end - chunks[e].begin) <= unit_target)) {
      bytes += chunks[e].end - chunks[e].begin;
      ++e;
    }
    units.emplace_back(c, e);
    c = e;
  }
  return units;
}

// A row's text in its partition record: x's whole row, or y's fields but the ID
// (key, field ki of ncols) — a view of the input where the row has no quote and
// the ID is at an end, else the fields encoded for output into *text.
inline std::string_view RecordText(const Record& r, std::string_view key, bool is_y, size_t ki, size_t ncols,
                                   std::string& text) {
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
  return body;
}

// The first problem in file order: units are numbered in it.
Status FirstProblem(const Table& t, const std::vector<ScanProblem>& problems) {
  for (const ScanProblem& p : problems)
    if (p.found) return t.Error(p);
  return Status::OK();
}

// Units of consecutive chunks: big enough to amortise the turn, small enough
// that `threads` of them (input pages + records + framed copies) fit.
size_t UnitTarget(const Context& ctx) {
  return std::clamp<size_t>(ctx.memory_limit / (8 * ctx.threads), size_t{1} << 20, size_t{64} << 20);
}

// The scanned units' keys and rows into *out. Record positions hold the unit in 24 bits.
Status AddUnits(const Table& t, const std::vector<KeyScan>& scans, const std::vector<uint64_t>& rows,
                PartitionedSide* out, uint64_t* unit_base) {
  for (size_t u = 0; u < scans.size(); ++u) {
    out->scan.Append(scans[u]);
    out->rows += rows[u];
  }
  *unit_base += scans.size();
  if (*unit_base >= (uint64_t{1} << 24))
    return Status::Internal(fmt::format("{} has more than 2^24 scan units: raise the memory limit", t.path()))
        .WithSetting(Setting::kMemoryLimit);
  return Status::OK();
}

// Level 0, one segment of the table: scans it in parallel units and appends
// their rows to the partition files. Units are numbered from `unit_base` (the
// units of earlier segments), so record positions keep the file's order.
// `known`: the file's type when already inferred (a re-partition, see RunGraceJoin), else null.
// A large mapped file may still be being checked for '"' (table_scan.h): each
// chunk then waits for the check to pass its end, and a '"' found stops the
// scan with *quote_found set (its chunks split where a quoted field may hold a
// line break): the caller drops what was written and starts over.
Status PartitionSegment(Context& ctx, const Table& t, bool is_y, uint32_t fanout, PartitionFiles& files,
                        uint64_t* unit_base, PartitionedSide* out, const KeyMode* known, bool* quote_found) {
  const bool unchecked = t.quote_check_pending();
  const auto& chunks = unchecked ? t.unchecked_chunks() : t.chunks();
  std::atomic<bool> quote{false};
  const size_t ki = t.key_index();
  const size_t ncols = t.column_names().size();
  const size_t unit_target = UnitTarget(ctx);
  const uint64_t base = *unit_base;
  const std::vector<std::pair<size_t, size_t>> units = GroupChunks(chunks, unit_target);
  Turns turns;
  FirstError error;
  std::vector<KeyScan> scans(units.size(), KeyScan(ctx.rules));
  std::vector<uint64_t> rows(units.size(), 0);
  std::vector<ScanProblem> problems(units.size());
  const size_t flush_bytes = std::max<size_t>(unit_target, 4 << 20);

  // One set of buffers per worker, kept from unit to unit: their memory is
  // reused rather than mapped, faulted in and zeroed afresh for every unit.
  std::vector<std::unique_ptr<PartitionBuffers>> worker_buffers(std::max(1u, ctx.threads));
  ParallelFor(units.size(), ctx.threads, [&](size_t u, unsigned worker) {
    auto& slot = worker_buffers[worker];
    if (!slot) slot = std::make_unique<PartitionBuffers>(fanout, ctx.block_bytes, ctx.zstd_level);
    PartitionBuffers& bufs = *slot;
    bufs.Clear();  // what a failed unit left
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
      if (unchecked && !t.WaitQuoteFree(chunks[c].end)) quote.store(true);
      if (quote.load()) break;
      uint64_t before = row;
      t.ScanChunk(chunks[c], rec, &problems[u], [&](const Record& r) {
        std::string_view key = r.fields[ki].view();
        uint32_t p = PartitionAt(PartitionHashScanning(key, known, ctx.rules, &scans[u]), 0, fanout);
        std::string_view body = RecordText(r, key, is_y, ki, ncols, text);
        bufs.Append(p, ((base + u) << 40) | row++, key, body);
      });
      t.Release(chunks[c]);
      ctx.AddProgress(row - before, chunks[c].end - chunks[c].begin);
      if (bufs.framed_bytes() >= flush_bytes) flush();
    }
    rows[u] = row;
    if (problems[u].found || quote.load()) {
      turns.Fail();
      return;
    }
    bufs.SealAll();
    flush();
    turns.Done(u);
  });
  if (quote.load()) {
    (void)t.chunks();  // the check is over: one chunk from now on
    *quote_found = true;
    return Status::OK();
  }
  CM_RETURN_IF_ERROR(FirstProblem(t, problems));
  CM_RETURN_IF_ERROR(error.Get());
  return AddUnits(t, scans, rows, out, unit_base);
}

}  // namespace

// Level 0: partitions a whole table, segment by segment (one for a mapped file).
// At most twice: a scan stopped by a '"' found behind it starts over, and the
// table's check is then over (PartitionSegment).
Status PartitionTable(Context& ctx, Table& t, bool is_y, uint32_t fanout, PartitionedSide* out,
                      const KeyMode* known) {
  for (;;) {
    PartitionFiles files(&ctx, is_y ? "y" : "x", fanout);
    uint64_t unit_base = 0;
    bool quote_found = false;
    CM_RETURN_IF_ERROR(t.Rewind());
    for (;;) {
      CM_RETURN_IF_ERROR(PartitionSegment(ctx, t, is_y, fanout, files, &unit_base, out, known, &quote_found));
      if (quote_found) break;
      auto more = t.NextSegment();
      if (!more.ok()) return more.status();
      if (!*more) break;
    }
    if (quote_found) {
      files.Discard();
      continue;
    }
    auto parts = files.Close();
    if (!parts.ok()) return parts.status();
    out->parts = std::move(parts.value());
    return Status::OK();
  }
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
        bufs.Append(p, r.pos, r.key, r.text);
      },
      [&] { return bufs.framed_bytes() >= (4u << 20) ? bufs.FlushTo(&files) : Status::OK(); }));
  bufs.SealAll();
  CM_RETURN_IF_ERROR(bufs.FlushTo(&files));
  ctx.env->RemoveFile(in.path);
  return files.Close();
}

}  // namespace cloudmerge::ooc
