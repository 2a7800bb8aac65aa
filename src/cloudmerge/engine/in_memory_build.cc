#include "cloudmerge/engine/in_memory_build.h"

#include <algorithm>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "cloudmerge/base/parallel.h"
#include "cloudmerge/engine/merge.h"
#include "cloudmerge/engine/probe_batch.h"

namespace cloudmerge::in_memory {
namespace {

// An upper bound on the records in [b, e): line terminators + 1.
size_t MaxRecords(const char* b, const char* e) {
  size_t n = 1;
  for (const char* p = b; p < e; ++p) n += (*p == '\n') + (*p == '\r');
  return n;
}

}  // namespace

Status ScanY(const Table& y, unsigned threads, PandasRules rules, Progress* progress, ScannedY* out) {
  const auto& chunks = y.chunks();
  const size_t ki = y.key_index();
  const size_t ncols = y.column_names().size();
  const char* base = y.data().data();
  // Rows go straight to their final place in one array: count first (cheap), then fill.
  std::vector<size_t> first(chunks.size() + 1, 0);
  ParallelFor(chunks.size(), threads, [&](size_t c, unsigned) {
    first[c + 1] = MaxRecords(base + chunks[c].begin, base + chunks[c].end);
  });
  for (size_t c = 0; c < chunks.size(); ++c) first[c + 1] += first[c];
  if (first.back() > kMaxBuildRows)
    return Status::InvalidInput(fmt::format(
        "{} has about {} rows; the in-memory engine holds at most {} rows of y. Split y into parts and merge each "
        "part.",
        y.path(), first.back(), kMaxBuildRows));
  out->rows = BigArray<YRow>(first.back());
  out->rules = rules;
  std::vector<KeyScan> scans(chunks.size(), KeyScan(rules));
  std::vector<ScanProblem> problems(chunks.size());
  std::vector<uint64_t> counts(chunks.size(), 0);
  out->arenas.resize(chunks.size());
  std::vector<uint64_t> addresses(chunks.size(), 0);  // per chunk, every text address or-ed (YRow's 48 bits)
  ParallelFor(chunks.size(), threads, [&](size_t c, unsigned) {
    Record rec;
    std::string tmp;
    Arena& arena = out->arenas[c];
    YRow* dst = out->rows.data() + first[c];
    uint64_t address_bits = 0;
    y.ScanChunk(chunks[c], rec, &problems[c], [&](const Record& r) {
      std::string_view key = r.fields[ki].view();
      scans[c].Add(key);
      const uint32_t key_len = static_cast<uint32_t>(key.size());
      const bool short_key = key.size() < YRow::kLongKey;
      const char* text;
      if (!r.has_quote_char && ki == 0 && short_key) {  // the common layout: ID first, no quotes
        text = ncols == 1 ? key.data() + key.size() + 1 : r.fields[1].data;
        *dst++ = YRow::KeyBefore(text, static_cast<uint32_t>(ncols == 1 ? 0 : r.end - text), key_len);
      } else if (!r.has_quote_char && ki == ncols - 1 && short_key) {
        text = r.begin;
        *dst++ = YRow::KeyAfter(text, static_cast<uint32_t>(key.data() - 1 - r.begin), key_len);
      } else {  // re-encode into the arena as key, [its 8-byte length,] tab, text
        tmp.assign(key);
        if (!short_key) {
          const uint64_t long_len = key.size();
          tmp.append(reinterpret_cast<const char*>(&long_len), sizeof long_len);
        }
        tmp.push_back('\t');
        size_t text_at = tmp.size();
        std::string fields;
        EncodeFields(r, ki, fields);
        tmp += fields;
        std::string_view stored = arena.Copy(tmp);
        text = stored.data() + text_at;
        *dst++ = YRow::KeyBefore(text, static_cast<uint32_t>(stored.size() - text_at),
                                 short_key ? key_len : YRow::kLongKey);
      }
      address_bits |= reinterpret_cast<uintptr_t>(text);
    });
    addresses[c] = address_bits;
    counts[c] = static_cast<uint64_t>(dst - (out->rows.data() + first[c]));
    if (progress) progress->Add(counts[c], chunks[c].end - chunks[c].begin);
    for (YRow* end = out->rows.data() + first[c + 1]; dst < end; ++dst) *dst = YRow::Missing();
  });
  for (uint64_t a : addresses)
    if (a & ~YRow::kAddressMask)
      return Status::Internal(fmt::format("{} was mapped above 2^48 bytes of address space, where the in-memory join "
                                          "cannot address it; set a memory limit low enough to join out of core",
                                          y.path())).WithSetting(Setting::kMemoryLimit);
  CM_RETURN_IF_ERROR(FirstProblem(y, problems));
  KeyScan total(rules);
  for (size_t c = 0; c < chunks.size(); ++c) {
    total.Append(scans[c]);
    out->record_count += counts[c];
  }
  CM_RETURN_IF_ERROR(CheckPandasRulesSupported(total, y.path(), rules));
  out->mode = total.Decide();
  out->plain_ints = total.plain_ints();
  return Status::OK();
}

Status Build(ScannedY& y, unsigned threads, TableLoad load, BuildSide* b) {
  b->y = &y;
  b->numeric = IsNumeric(y.mode);
  const size_t n = y.rows.size();
  const size_t partitions = BuildPartitions(threads);
  // Each row's partition (one byte), in parallel by row range; rows whose key
  // never matches are marked missing.
  constexpr uint8_t kNoPartition = 0xff;
  BigArray<uint8_t> part(n);
  const size_t block = 1 << 16;
  ParallelFor((n + block - 1) / block, threads, [&](size_t t, unsigned) {
    size_t end = std::min(n, (t + 1) * block);
    for (size_t i = t * block; i < end; ++i) {
      YRow& r = y.rows[i];
      ProbeKey k;
      if (!r.missing() && MakeKey(y.mode, r.key(), &k, y.rules)) part[i] = static_cast<uint8_t>(PartitionOf(k.hash, partitions));
      else { r.set_missing(); part[i] = kNoPartition; }
    }
  });
  const size_t expected = ExpectedKeysPerTable(y.record_count, partitions);
  for (size_t p = 0; p < partitions; ++p) b->tables.emplace_back(expected, load);
  ParallelFor(partitions, threads, [&](size_t p, unsigned) {
    RefHashTable& table = b->tables[p];
    // Each thread faults in its own table before inserting: written first, not read first (BigArray).
    table.PrefaultForWrite();
    InsertLastToFirst<ProbeKey>(
        n,
        [&](size_t i, ProbeKey* k) { return part[i] == p && MakeKey(y.mode, y.rows[i].key(), k, y.rules); },
        [&](const ProbeKey& k) { table.PrefetchForInsert(k.hash); },
        [&](size_t i, const ProbeKey& k) {
          const uint32_t row = static_cast<uint32_t>(i);
          y.rows[i].next = b->numeric ? table.Insert(k.num, k.hash, row, b->NumericKeys(), HashNumericKey)
                                      : table.Insert(k.text, k.hash, row, b->TextKeys(), HashTextKey);
        });
  });
  return Status::OK();
}

void KeyCounters::Init(const ScannedY& y) {
  const size_t n = y.rows.size();
  chain = BigArray<uint32_t>(n);
  x_counts = BigArray<uint32_t>(n);
  CountChains(
      n, [&](size_t i) { return y.rows[i].next; }, [&](size_t i) { return !y.rows[i].missing(); },
      [&](size_t i) -> uint32_t& { return chain[i]; });
}

void KeyCounters::ResetX() {
  if (x_counts.size()) std::memset(x_counts.data(), 0, x_counts.size() * sizeof(uint32_t));
}

}  // namespace cloudmerge::in_memory
