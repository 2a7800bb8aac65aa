#include "cloudmerge/engine/split_tasks.h"

#include <algorithm>
#include <cstring>
#include <queue>

#include <fmt/format.h>

#include "cloudmerge/base/prefetch.h"
#include "cloudmerge/base/varint.h"
#include "cloudmerge/engine/join_hash_table.h"
#include "cloudmerge/engine/join_keys.h"
#include "cloudmerge/engine/probe_batch.h"

namespace cloudmerge {

// KeyScan's counters as bytes (a friend of KeyScan: the fields stay private).
struct KeyScanCodec {
  static std::string Encode(const KeyScan& s) {
    std::string out;
    auto u64 = [&](uint64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
    u64(s.values_);
    const bool flags[] = {s.any_na_,    s.int_broken_, s.int_broken_by_overflow_, s.uint_error_,
                          s.uint_error_overflow_, s.seen_sint_, s.seen_uint_, s.all_float_,
                          s.all_bool_,  s.lossy_int_};
    for (bool f : flags) out.push_back(f ? 1 : 0);
    out.push_back(static_cast<char>(s.rules_.version));
    u64(s.big_int_at_);
    out.append(s.big_int_);
    return out;
  }
  static bool Decode(std::string_view b, KeyScan* s) {
    constexpr size_t kFixed = 8 + 10 + 1 + 8;
    if (b.size() < kFixed) return false;
    std::memcpy(&s->values_, b.data(), 8);
    bool* flags[] = {&s->any_na_,    &s->int_broken_, &s->int_broken_by_overflow_, &s->uint_error_,
                     &s->uint_error_overflow_, &s->seen_sint_, &s->seen_uint_, &s->all_float_,
                     &s->all_bool_,  &s->lossy_int_};
    for (size_t i = 0; i < 10; ++i) *flags[i] = b[8 + i] != 0;
    s->rules_.version = static_cast<PandasVersion>(b[18]);
    std::memcpy(&s->big_int_at_, b.data() + 19, 8);
    s->big_int_.assign(b.substr(kFixed));
    return true;
  }
};

std::string EncodeKeyScan(const KeyScan& scan) { return KeyScanCodec::Encode(scan); }
bool DecodeKeyScan(std::string_view bytes, KeyScan* out) { return KeyScanCodec::Decode(bytes, out); }

namespace {

template <class T>
void Put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// Scan blobs store positions as the difference from the previous record's in the
// same blob (blobs are in file order) and lengths as they are, all as varints
// (base/varint.h): a record's header is ~4 bytes instead of 16, a third of the
// shuffle on short rows.

struct RecordView {
  uint64_t pos;
  std::string_view key, text;
};

// Calls fn(RecordView) for each record of a blob; false if the blob is damaged.
template <class Fn>
bool ForEachRecord(std::string_view blob, Fn&& fn) {
  const char* p = blob.data();
  const char* end = p + blob.size();
  uint64_t pos = 0;
  while (p < end) {
    uint64_t delta, key_word, key_at = 0, tlen;
    if (!GetVarint(p, end, &delta) || !GetVarint(p, end, &key_word)) return false;
    const uint64_t klen = key_word >> 1;
    const bool key_in_text = key_word & 1;
    if (key_in_text && !GetVarint(p, end, &key_at)) return false;
    if (!GetVarint(p, end, &tlen)) return false;
    const uint64_t stored_key = key_in_text ? 0 : klen;
    if (static_cast<uint64_t>(end - p) < stored_key + tlen) return false;
    if (key_in_text && (key_at > tlen || klen > tlen - key_at)) return false;
    pos += delta;
    const std::string_view text(p + stored_key, tlen);
    fn(RecordView{pos, key_in_text ? text.substr(key_at, klen) : std::string_view(p, klen), text});
    p += stored_key + tlen;
  }
  return true;
}

Status Damaged(const char* what) {
  return Status::Internal(fmt::format("cluster task: the {} blob is damaged (cut short or not ours)", what));
}

}  // namespace

bool RecordStartAtOrAfter(std::string_view bytes, uint64_t base, uint64_t size, uint64_t pos, uint64_t* start) {
  const uint64_t have_end = base + bytes.size();
  for (uint64_t j = pos - 1;; ++j) {
    if (j >= size) {
      *start = size;
      return true;
    }
    if (j >= have_end) return false;
    char c = bytes[j - base];
    if (c == '\n') {
      *start = j + 1;
      return true;
    }
    if (c == '\r') {
      if (j + 1 >= size) {
        *start = size;
        return true;
      }
      if (j + 1 >= have_end) return false;  // "\r\n" or a lone "\r": the next byte decides
      *start = bytes[j + 1 - base] == '\n' ? j + 2 : j + 1;
      return true;
    }
  }
}

namespace {

// The text a record carries for output: the record's own bytes when it has no
// '"' (then no field needs quoting and they are exactly what EncodeFields would
// make), else its fields encoded into *text.
std::string_view OutputText(const Record& r, size_t ki, size_t ncols, bool keep_key_column, std::string& text) {
  if (!r.has_quote_char && (keep_key_column || ncols == 1))
    return keep_key_column ? std::string_view(r.begin, r.end - r.begin) : std::string_view();
  if (!r.has_quote_char && ki == 0) return std::string_view(r.fields[1].data, r.end - r.fields[1].data);
  if (!r.has_quote_char && ki == ncols - 1) return std::string_view(r.begin, r.fields[ki].data - 1 - r.begin);
  EncodeFields(r, keep_key_column ? std::string::npos : ki, text);
  return text;
}

// One record of a scan blob (format in split_tasks.h). An ID that lies within
// the text (x's: its text is the whole row) is stored as its offset there, not
// again: a quarter of x's shuffle bytes with short rows.
void AppendRecord(std::string& blob, uint64_t pos_delta, std::string_view key, std::string_view text) {
  PutVarint(blob, pos_delta);
  const uintptr_t k = reinterpret_cast<uintptr_t>(key.data()), t = reinterpret_cast<uintptr_t>(text.data());
  const bool key_in_text = !key.empty() && k >= t && k + key.size() <= t + text.size();
  PutVarint(blob, (uint64_t{key.size()} << 1) | key_in_text);
  if (key_in_text) PutVarint(blob, k - t);
  PutVarint(blob, text.size());
  if (!key_in_text) blob.append(key);
  blob.append(text);
}

bool SegmentHasQuote(const Table& table) {
  std::string_view data = table.data();
  for (const ChunkRange& c : table.chunks())
    if (std::memchr(data.data() + c.begin, '"', c.end - c.begin) != nullptr) return true;
  return false;
}

}  // namespace

Status ScanTable(Table& table, const ScanOptions& o, SplitScan* out) {
  out->scan = KeyScan(o.rules);
  out->partitions.assign(o.partitions, std::string());
  // A record is about its row's bytes + the ID + 16: reserving twice the segment's share per
  // partition (address space, faulted in only as written) avoids growing blobs by copies.
  const size_t reserve = o.flush ? o.flush_bytes + (size_t{64} << 10) : table.data().size() * 2 / std::max(o.partitions, 1u);
  for (std::string& blob : out->partitions) blob.reserve(reserve + 4096);
  Status flushed;  // the first error of o.flush (a record callback cannot return one)
  std::vector<uint64_t> last_pos(o.partitions, 0);  // per blob: positions are stored as deltas
  const size_t ki = table.key_index();
  const size_t ncols = table.column_names().size();
  uint64_t segment_offset = 0;
  std::string text;
  Record rec;
  for (;;) {
    std::string_view data = table.data();
    if (o.stop_at_quote && SegmentHasQuote(table)) {
      out->has_quote = true;
      out->partitions.assign(o.partitions, std::string());
      return Status::OK();
    }
    for (const ChunkRange& c : table.chunks()) {
      ScanProblem problem;
      bool ok = table.ScanChunk(c, rec, &problem, [&](const Record& r) {
        std::string_view key = r.fields[ki].view();
        ++out->rows;
        if (o.partitions == 0) {  // types only
          out->scan.Add(key);
          return;
        }
        uint64_t h = PartitionHashScanning(key, o.hash_under_mode ? &o.mode : nullptr, o.rules, &out->scan);
        const uint32_t p = PartitionAt(h, 0, o.partitions);
        std::string& blob = out->partitions[p];
        const std::string_view t = OutputText(r, ki, ncols, o.keep_key_column, text);
        const uint64_t pos = segment_offset + static_cast<uint64_t>(r.begin - data.data() + o.position_shift);
        AppendRecord(blob, pos - last_pos[p], key, t);
        last_pos[p] = pos;
        if (o.flush && blob.size() >= o.flush_bytes && flushed.ok()) {
          flushed = o.flush(p, blob);
          blob.clear();  // keeps its memory for the next records
          last_pos[p] = 0;  // a new blob
        }
      });
      table.Release(c);
      CM_RETURN_IF_ERROR(flushed);
      if (!ok) {
        CM_RETURN_IF_ERROR(table.Intact());
        return table.Error(problem);
      }
    }
    segment_offset += data.size();
    auto more = table.NextSegment();
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  CM_RETURN_IF_ERROR(table.Intact());
  out->end_position = segment_offset + o.position_shift;
  if (o.flush) {
    for (uint32_t p = 0; p < out->partitions.size(); ++p) {
      if (!out->partitions[p].empty()) CM_RETURN_IF_ERROR(o.flush(p, out->partitions[p]));
      std::string().swap(out->partitions[p]);
    }
  }
  return Status::OK();
}

namespace {

// A y row as the probe needs it: its text and the next row of its key, in one
// 16-byte entry (four to a cache line): a match costs one miss for both, where a
// record view (40 bytes) and a separate chain array cost two.
struct JoinYRow {
  const char* text;
  uint32_t len;
  uint32_t next;  // the next row of y with the same key, in file order; kNoRow ends the chain
};

// Hashes y's keys into num (numeric) or txt, chaining rows of a key through
// rows[].next. From the last row back (each chain then runs in file order),
// kProbeBatch rows at a time: their keys made and slots prefetched first, then
// inserted in the same order (a table this size misses the cache on nearly every slot).
void BuildChains(const std::vector<std::string_view>& keys, const JoinOptions& o, bool numeric,
                 NumericHashTable& num, TextHashTable& txt, std::vector<JoinYRow>& rows) {
  struct Pending {
    uint32_t row;
    ProbeKey key;
  };
  Pending pending[kProbeBatch];
  for (size_t end = keys.size(); end > 0;) {
    size_t n = 0;
    for (; end > 0 && n < kProbeBatch; --end) {
      Pending& p = pending[n];
      p.row = static_cast<uint32_t>(end - 1);
      if (!MakeKey(o.y_mode, keys[end - 1], &p.key, o.rules)) continue;
      numeric ? num.Prefetch(p.key.hash) : txt.Prefetch(p.key.hash);
      ++n;
    }
    for (size_t i = 0; i < n; ++i) {
      const Pending& p = pending[i];
      rows[p.row].next = numeric ? num.Insert(p.key.num, p.key.hash, p.row)
                                 : txt.Insert(p.key.text, p.key.hash, p.row, [&](uint32_t j) { return keys[j]; });
    }
  }
}

// y's records as rows (their keys apart, for the build).
Status DecodeY(const std::vector<std::string_view>& y_records, size_t y_bytes, std::vector<JoinYRow>* ys,
               std::vector<std::string_view>* keys) {
  ys->reserve(y_bytes / 16);  // records are >= 3 bytes of header; about 20-40 on typical short rows
  keys->reserve(y_bytes / 16);
  bool too_long = false;
  for (std::string_view b : y_records) {
    bool ok = ForEachRecord(b, [&](const RecordView& r) {
      too_long |= r.text.size() > UINT32_MAX;
      ys->push_back(JoinYRow{r.text.data(), static_cast<uint32_t>(r.text.size()), kNoRow});
      keys->push_back(r.key);
    });
    if (!ok) return Damaged("y");
  }
  if (too_long) return Status::Internal("cluster task: a y row of 4 GiB or more");
  return Status::OK();
}

// One match in a range's blob: x's position as the difference from the blob's
// previous match (x positions never decrease within a range's blob), the line's
// length, then x's text and y's.
void AppendMatch(std::string& blob, const RecordView& x, const JoinYRow& y, bool y_has_values, uint64_t* last_x) {
  PutVarint(blob, x.pos - *last_x);
  *last_x = x.pos;
  PutVarint(blob, x.text.size() + (y_has_values ? 1 + y.len : 0));
  blob.append(x.text);
  if (y_has_values) {
    blob.push_back('\t');
    blob.append(y.text, y.len);
  }
}

}  // namespace

Result<uint64_t> JoinPartition(const std::vector<std::string_view>& x_records,
                               const std::vector<std::string_view>& y_records, const JoinOptions& o,
                               std::vector<std::string>* out) {
  const uint32_t ranges = std::max<uint32_t>(o.ranges, 1);
  out->assign(ranges, std::string());
  auto for_each = [](const std::vector<std::string_view>& blobs, auto&& fn) {
    for (std::string_view b : blobs)
      if (!ForEachRecord(b, fn)) return false;
    return true;
  };
  size_t x_bytes = 0, y_bytes = 0;
  for (std::string_view b : x_records) x_bytes += b.size();
  for (std::string_view b : y_records) y_bytes += b.size();
  // y's rows for the probe, and their keys (for the build; kept for a text table's lookups).
  std::vector<JoinYRow> ys;
  std::vector<std::string_view> y_keys;
  CM_RETURN_IF_ERROR(DecodeY(y_records, y_bytes, &ys, &y_keys));
  if (IsNumeric(o.x_mode) != IsNumeric(o.y_mode) || ys.empty()) {  // a number never equals a text
    if (!for_each(x_records, [](const RecordView&) {})) return Damaged("x");
    return uint64_t{0};
  }
  // Room for about one match per x row in each range: reserved address space costs nothing
  // until written, and saves the copies (and page faults) of growing a blob of tens of MB.
  for (std::string& blob : *out) blob.reserve((x_bytes + y_bytes) / ranges + 4096);
  if (ys.size() > kMaxBuildRows)
    return Status::Internal("cluster task: a join partition has more than 2^30 y rows; use more partitions");
  const bool numeric = IsNumeric(o.y_mode);
  // Sparse: a partition is sized for its executor's memory (--partitions), and the slots'
  // share of it is small beside the records'.
  NumericHashTable num(numeric ? ys.size() : 0, TableLoad::kSparse);
  TextHashTable txt(numeric ? 0 : ys.size(), TableLoad::kSparse);
  auto prefetch_slot = [&](const ProbeKey& k) { numeric ? num.Prefetch(k.hash) : txt.Prefetch(k.hash); };
  BuildChains(y_keys, o, numeric, num, txt, ys);
  if (numeric) std::vector<std::string_view>().swap(y_keys);  // a text table reads its keys from them
  uint64_t matches = 0;
  const uint64_t x_end = std::max<uint64_t>(o.x_end, 1);
  std::vector<uint64_t> last_x(ranges, 0);
  // Probe through ProbeBatch (probe_batch.h): slot, y row and y text prefetched stage by stage.
  struct Probe {
    RecordView x;
    ProbeKey key;
  };
  ProbeBatch<Probe> batch;
  // Text: a candidate from the slots, confirmed in emit once its row is in cache (FindCandidate).
  auto find = [&](const Probe& p) {
    return numeric ? num.Find(p.key.num, p.key.hash) : txt.FindCandidate(p.key.text, p.key.hash);
  };
  auto prefetch_row = [&](uint32_t j) {
    PrefetchForRead(&ys[j]);
    if (!numeric) PrefetchForRead(&y_keys[j]);  // Confirm reads it
  };
  auto prefetch_text = [&](uint32_t j) { PrefetchForRead(ys[j].text); };
  auto emit = [&](const Probe& p, uint32_t j) {
    if (!numeric) j = txt.Confirm(p.key.text, p.key.hash, j, [&](uint32_t r) { return y_keys[r]; });
    const RecordView& x = p.x;
    uint32_t r = static_cast<uint32_t>(
        std::min<unsigned __int128>(ranges - 1, static_cast<unsigned __int128>(x.pos) * ranges / x_end));
    for (; j != kNoRow; j = ys[j].next, ++matches) AppendMatch((*out)[r], x, ys[j], o.y_has_values, &last_x[r]);
  };
  bool ok = for_each(x_records, [&](const RecordView& x) {
    Probe p{x, {}};
    if (!MakeKey(o.x_mode, x.key, &p.key, o.rules)) return;
    prefetch_slot(p.key);
    batch.Add(p);
    if (batch.full()) batch.Flush(find, prefetch_row, prefetch_text, emit);
  });
  if (!batch.empty()) batch.Flush(find, prefetch_row, prefetch_text, emit);
  if (!ok) return Damaged("x");
  return matches;
}

Result<uint64_t> MergeMatches(const std::vector<std::string_view>& blobs,
                              const std::function<Status(std::string_view)>& emit) {
  // A cursor on its blob's next match, decoded (x position, line).
  struct Cursor {
    const char* p;
    const char* end;
    uint64_t pos = 0;
    std::string_view line;
    // Decodes the match at p; false at the end or on damage (damaged set).
    bool Next(bool* damaged) {
      if (p == end) return false;
      uint64_t delta, len;
      if (!GetVarint(p, end, &delta) || !GetVarint(p, end, &len) || static_cast<uint64_t>(end - p) < len) {
        *damaged = true;
        return false;
      }
      pos += delta;
      line = std::string_view(p, len);
      p += len;
      return true;
    }
  };
  bool damaged = false;
  std::vector<Cursor> cursors;
  for (std::string_view b : blobs) {
    Cursor c{b.data(), b.data() + b.size(), 0, {}};
    if (c.Next(&damaged)) cursors.push_back(c);
  }
  if (damaged) return Damaged("match");
  // Ties cannot occur across blobs (an x row has one ID, so one partition, and a partition's
  // pieces of a range hold disjoint x rows); within a blob its matches stay in y order.
  auto later = [&](size_t a, size_t b) { return cursors[a].pos > cursors[b].pos; };
  std::priority_queue<size_t, std::vector<size_t>, decltype(later)> heap(later);
  for (size_t i = 0; i < cursors.size(); ++i) heap.push(i);
  std::string buf;
  constexpr size_t kFlush = size_t{4} << 20;
  uint64_t lines = 0;
  while (!heap.empty()) {
    size_t i = heap.top();
    heap.pop();
    Cursor& c = cursors[i];
    const uint64_t pos = c.pos;
    // All of this x row's matches are consecutive in its blob.
    bool more;
    do {
      buf.append(c.line);
      buf.push_back('\n');
      ++lines;
      more = c.Next(&damaged);
    } while (more && c.pos == pos);
    if (damaged) return Damaged("match");
    if (more) heap.push(i);
    if (buf.size() >= kFlush) {
      CM_RETURN_IF_ERROR(emit(buf));
      buf.clear();
    }
  }
  if (!buf.empty()) CM_RETURN_IF_ERROR(emit(buf));
  return lines;
}

}  // namespace cloudmerge
