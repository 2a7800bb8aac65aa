// The per-partition join (partition_join.h): BuildTable (y's records, hashed),
// the prefetch-batched probe of x's records through it, and the two ways a
// partition is joined (whole, or by blocks of y).
#include "cloudmerge/engine/out_of_core/partition_join.h"

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cloudmerge/base/prefetch.h"
#include "cloudmerge/engine/join_hash_table.h"
#include "cloudmerge/engine/join_keys.h"
#include "cloudmerge/engine/probe_batch.h"

namespace cloudmerge::ooc {
namespace {

// ---- Joining one partition in memory -------------------------------------------

// y's records of a partition (or of one block of a hot partition), hashed.
class BuildTable {
 public:
  // A hit reads its head row: its chain length lives there too (in what was padding).
  struct Row {
    uint64_t pos;
    std::string_view key, text;
    uint32_t next;
    uint32_t chain;  // rows of the key from this one on (CountChains): a head's is its key's y count
  };

  BuildTable(KeyMode mode, PandasRules rules) : mode_(mode), rules_(rules), numeric_(IsNumeric(mode)) {}

  void AddBlock(std::string block) { blocks_.push_back(std::move(block)); }
  // Empties the table for the next partition, keeping its memory (JoinScratch).
  void Reset() {
    blocks_.clear();
    rows_.clear();
  }

  // Parses the blocks' records and builds the table. false: a malformed record.
  bool Build(uint64_t expected_rows) {
    rows_.reserve(expected_rows);
    for (const std::string& b : blocks_) {
      PartRecords recs(b);
      PartRecord r;
      bool bad = false;
      while (recs.Next(&r, &bad)) rows_.push_back(Row{r.pos, r.key, r.text, kNoRow, 0});
      if (bad) return false;
    }
    size_t n = rows_.size();
    // Sparse: a lookup touches one cache line, mostly (join_hash_table.h TableLoad); the
    // partition's budget counts its slots (BuildRowBytes).
    if (numeric_) {
      if (!numeric_table_ || !numeric_table_->Reuse(n, TableLoad::kSparse)) numeric_table_.emplace(n, TableLoad::kSparse);
    } else if (!text_table_ || !text_table_->Reuse(n, TableLoad::kSparse)) {
      text_table_.emplace(n, TableLoad::kSparse);
    }
    // Buckets prefetched as the in-memory build does: the table is bigger than L2.
    InsertLastToFirst<ProbeKey>(
        n, [&](size_t i, ProbeKey* k) { return MakeKey(mode_, rows_[i].key, k, rules_); },
        [&](const ProbeKey& k) {
          if (numeric_) numeric_table_->PrefetchForInsert(k.hash);
          else text_table_->PrefetchForInsert(k.hash);
        },
        [&](size_t i, const ProbeKey& k) {
          const uint32_t row = static_cast<uint32_t>(i);
          rows_[i].next = numeric_ ? numeric_table_->Insert(k.num, k.hash, row)
                                   : text_table_->Insert(k.text, k.hash, row, key_of_row());
        });
    // Chain lengths from each row on (so a head's is its key's y count), and x counts per head.
    // (A row without a key is never reached from a head, so its count does not matter.)
    CountChains(
        n, [&](size_t i) { return rows_[i].next; }, [](size_t) { return true; },
        [&](size_t i) -> uint32_t& { return rows_[i].chain; });
    x_count_.assign(n, 0);
    return true;
  }

  void Prefetch(uint64_t hash) const {
    if (numeric_) numeric_table_->Prefetch(hash);
    else text_table_->Prefetch(hash);
  }
  uint32_t Find(const ProbeKey& k) const {
    return numeric_ ? numeric_table_->Find(k.num, k.hash) : text_table_->Find(k.text, k.hash, key_of_row());
  }
  // Find in two steps for the batched probe (TextHashTable::FindCandidate).
  uint32_t FindCandidate(const ProbeKey& k) const {
    return numeric_ ? numeric_table_->Find(k.num, k.hash) : text_table_->FindCandidate(k.text, k.hash);
  }
  uint32_t Confirm(const ProbeKey& k, uint32_t candidate) const {
    return numeric_ ? candidate : text_table_->Confirm(k.text, k.hash, candidate, key_of_row());
  }
  const Row& row(uint32_t i) const { return rows_[i]; }
  uint32_t chain_length(uint32_t head) const { return rows_[head].chain; }
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
  KeyMode mode() const { return mode_; }

  // Calls f(y key text, x count, y count) for every head an x row found.
  template <class F>
  void ForEachMatchedKey(F&& f) const {
    for (size_t i = 0; i < rows_.size(); ++i)
      if (x_count_[i]) f(rows_[i].key, x_count_[i], rows_[i].chain);
  }

 private:
  // The text table reads a slot's key from its head row.
  struct RowKey {
    const std::vector<Row>* rows;
    std::string_view operator()(uint32_t j) const { return (*rows)[j].key; }
  };
  RowKey key_of_row() const { return RowKey{&rows_}; }

  KeyMode mode_;
  PandasRules rules_;
  bool numeric_;
  std::vector<std::string> blocks_;
  std::vector<Row> rows_;
  std::optional<NumericHashTable> numeric_table_;
  std::optional<TextHashTable> text_table_;
  std::vector<uint32_t> x_count_;
};
// The partition budget's per-record entry (context.h BuildRowBytes): a row (its chain
// length included) and its x count.
static_assert(sizeof(BuildTable::Row) == 48);
static_assert(sizeof(BuildTable::Row) + sizeof(uint32_t) == kBuildRowEntryBytes);

// Streams x's partition through a built table: counts, and emits while the
// output-row limit allows.
Status ProbeThrough(Context& ctx, const SpillPart& xp, BuildTable& table, MatchSink* sink) {
  // The in-memory join's batched probe (probe_batch.h): slots prefetched as rows
  // are added, then heads found and their y rows prefetched, then emitted in order.
  struct Pending {
    PartRecord r;
    ProbeKey k;
  };
  ProbeBatch<Pending> batch;
  uint64_t block_rows = 0;
  Status emit_status;
  auto flush = [&] {
    batch.Flush([&](const Pending& p) { return table.FindCandidate(p.k); },
                [&](uint32_t head) { PrefetchForRead(&table.row(head)); },
                [&](uint32_t head) { PrefetchForRead(table.row(head).text.data()); },
                [&](const Pending& p, uint32_t candidate) {
                  const uint32_t head = table.Confirm(p.k, candidate);
                  if (!emit_status.ok() || head == kNoRow) return;
                  table.CountX(head);
                  block_rows += table.chain_length(head);
                  if (!ctx.emitting()) return;
                  for (uint32_t j = head; j != kNoRow && emit_status.ok(); j = table.row(j).next)
                    emit_status = sink->Emit(p.r.pos, table.row(j).pos, p.r.text, table.row(j).text);
                });
  };
  return ForEachPartRecord(
      ctx.env, xp.path,
      [&](const PartRecord& r) {
        Pending p;
        if (!MakeKey(ctx.x_mode, r.key, &p.k, ctx.rules)) return;
        table.Prefetch(p.k.hash);
        p.r = r;
        batch.Add(p);
        if (batch.full()) flush();
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
  while (bytes + BuildRowBytes(table->mode()) * *records < budget || *records == 0) {
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

}  // namespace

Status CountDistinctKeys(Context& ctx, const SpillPart& yp) {
  BuildTable table(ctx.y_mode, ctx.rules);
  return LoadWholePartition(ctx, yp, &table);
}

struct JoinScratch::Tables {
  BuildTable table;
};
JoinScratch::JoinScratch() = default;
JoinScratch::~JoinScratch() = default;

Status JoinInMemory(Context& ctx, const SpillPart& yp, const SpillPart& xp, MatchSink* sink, KeyStats* keys,
                    JoinScratch* scratch) {
  if (!scratch->tables) scratch->tables.reset(new JoinScratch::Tables{BuildTable(ctx.y_mode, ctx.rules)});
  BuildTable& table = scratch->tables->table;
  table.Reset();
  CM_RETURN_IF_ERROR(LoadWholePartition(ctx, yp, &table));
  CM_RETURN_IF_ERROR(ProbeThrough(ctx, xp, table, sink));
  table.ForEachMatchedKey([&](std::string_view key, uint64_t cx, uint64_t cy) { keys->Add(key, cx, cy); });
  return Status::OK();
}

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
    std::unique_ptr<MatchSink> sink = NewMatchSink(&ctx, outs);
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

}  // namespace cloudmerge::ooc
