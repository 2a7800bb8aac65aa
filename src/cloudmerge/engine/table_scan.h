// Table scanning: one TSV input opened for a merge. Owns the input's bytes, its
// header, the key column, and the split of its body into chunks that threads
// can tokenize independently.
//
// Segments: a local file is mapped and is one segment, the whole file. An input
// read as a stream (an S3 object, a .gz/.zst file, standard input, a FIFO, a
// device; Env::OpenStream) is never held whole: it is read in segments of whole records (about `segment_bytes`
// each; a record is never split), and the engine walks them in order with
// NextSegment(), processing each segment's chunks in parallel while the next
// segment is read and decoded in the background. Rewind() reads it again from
// the start (the in-memory engine's second pass over x): opened again, or, for
// an input that can be read only once and is longer than its first segment,
// from the copy a SpooledStream kept in the temp dir. whole() says the
// current segment is the entire input (always true for a mapped file).
//
// Chunks: a segment that contains no '"' at all cannot have line breaks inside
// fields, so it is split at line ends into many chunks scanned in parallel. A
// segment with quotes is scanned as one chunk, in order (correct, single-threaded).
// Chunk offsets are relative to the current segment's data().
//
// A mapped file of at least SegmentSizes::quote_check_ahead_from bytes is split
// at line ends before it is known to hold no '"': the check runs in the
// background (BackgroundQuoteCheck), so that a file bigger than the page cache
// is not read from disk once to check it and again to scan it. chunks() waits
// for the whole check (and gives one chunk if a '"' turned up). A reader that
// can start over instead scans unchecked_chunks(), calling WaitQuoteFree(end)
// before each chunk, and starts over with chunks() if that returns false.
//
// ScanChunk validates as it goes (UTF-8, NUL bytes, field count per row,
// unterminated quotes) and reports the first problem of the chunk with its byte
// offset; Table::Error turns it into a file/line/column message (lines counted
// from the start of the input, across segments).
//
// Thread safety: ScanChunk may run on different chunks of the current segment
// concurrently, each thread with its own Record. NextSegment() and Rewind()
// must not race with anything else on the Table.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cloudmerge/io/env.h"
#include "cloudmerge/engine/error_report.h"
#include "cloudmerge/engine/quote_check.h"
#include "cloudmerge/io/spooled_stream.h"
#include "cloudmerge/base/status.h"
#include "cloudmerge/engine/tsv_tokenizer.h"

namespace cloudmerge {

struct ChunkRange {
  size_t begin;  // byte offsets in the input
  size_t end;
};

struct ScanProblem {
  bool found = false;
  size_t offset = 0;
  std::string what;
  std::string fix;
};

// How a streamed input is read: segment sizes, the longest record, and where
// a one-pass input (standard input, a FIFO, a device) keeps its copy when a
// second pass needs one (SpooledStream).
struct SegmentSizes {
  size_t first = size_t{64} << 20;  // the first segment (holds the header)
  size_t rest = size_t{64} << 20;   // every later one
  // A segment grows past `rest` when one record (or an unterminated quote)
  // spans more; past this, it is an error.
  size_t max_record = size_t{2} << 30;
  std::string temp_dir;  // "": DefaultTempParent()
  // A mapped file with a body this big or bigger is checked for '"' in the
  // background, just ahead of its scan (see above); 0: every file that splits.
  uint64_t quote_check_ahead_from = uint64_t{1} << 30;
};

// The longest record a streamed input may have under a memory limit: an
// eighth of it (1 MiB to 2 GiB). A segment is held while the next is read,
// and a record being read grows its buffer by doubling: a record that never
// ends (/dev/zero, a gzip bomb of one line) stops well within the limit.
inline size_t MaxRecordBytes(uint64_t memory_limit) {
  return static_cast<size_t>(std::clamp<uint64_t>(memory_limit / 8, uint64_t{1} << 20, uint64_t{2} << 30));
}

// For a memory limit: a streamed input holds two segments at once (the one
// being processed, the next one being read), a small share of the limit.
inline SegmentSizes StreamSegmentSizes(uint64_t memory_limit) {
  size_t s = static_cast<size_t>(std::clamp<uint64_t>(memory_limit / 16, uint64_t{1} << 20, uint64_t{64} << 20));
  return SegmentSizes{s, s, MaxRecordBytes(memory_limit), ""};
}

class Table {
 public:
  // key is a 1-based position or a column name.
  static Result<std::unique_ptr<Table>> Open(Env* env, const std::string& path, const std::string& key,
                                             bool allow_numeric_header, size_t target_chunk_bytes,
                                             SegmentSizes segments = {});
  ~Table();

  const std::string& path() const { return path_; }
  const std::vector<std::string>& column_names() const { return names_; }
  size_t key_index() const { return key_index_; }

  // --- The current segment.
  std::string_view data() const { return data_; }
  const std::vector<ChunkRange>& chunks() const {
    if (quote_check_pending()) SettleQuoteCheck();
    return chunks_;
  }
  // The quote check of a large mapped file still runs (see above).
  bool quote_check_pending() const { return quote_check_pending_.load(std::memory_order_acquire); }
  // While it does: the chunks as split at line ends, and the wait before scanning one.
  const std::vector<ChunkRange>& unchecked_chunks() const { return chunks_; }
  bool WaitQuoteFree(size_t upto) const { return quote_check_->WaitQuoteFree(upto); }
  void Release(const ChunkRange& c) const {
    if (input_) input_->Release(c.begin, c.end);
  }
  // The current segment is the entire input.
  bool whole() const { return segment_index_ == 0 && at_end_; }
  bool streamed() const { return stream_ != nullptr; }
  // Moves to the next segment; false (and the current one kept) at the end.
  Result<bool> NextSegment();
  // Back to the first segment. A streamed input is opened and read again.
  Status Rewind();

  // Bytes of the input (decoded): exact for a mapped file or once a streamed
  // input has been read to its end, an estimate before (InputStream::size_hint).
  uint64_t size() const;
  Status Intact() const { return input_ ? input_->Intact() : Status::OK(); }  // see InputData::Intact

  Status Error(const ScanProblem& p) const;

  // Tokenizes and validates one chunk, calling on_row(const Record&) per data row.
  // Returns false (and fills *problem) at the first invalid row.
  template <class OnRow>
  bool ScanChunk(const ChunkRange& c, Record& rec, ScanProblem* problem, OnRow&& on_row) const;

 private:
  Table() = default;
  bool CheckEncoding(const ChunkRange& c, ScanProblem* problem) const;
  void FieldCountProblem(const Record& rec, ScanProblem* problem) const;
  void QuoteProblem(const char* where, ScanProblem* problem) const;

  // A streamed segment as read: bytes up to a record boundary, and what follows.
  struct Loaded {
    std::string bytes;
    std::string rest;  // read past the cut: the start of the next segment
    bool at_end = false;
    uint64_t lines = 0;  // line ends in `bytes`
  };
  static Status LoadSegment(InputStream* stream, const std::string& path, std::string carry, size_t target,
                            size_t max_record, uint64_t first_line, Loaded* out);
  Status ParseHeader(bool allow_numeric_header, const std::string& key, const std::string& raw_path);
  void SplitChunks(size_t body);
  void SplitAtLineEnds(size_t body, size_t chunk_bytes);
  void SplitAtGrid(size_t body, size_t chunk_bytes);
  void SplitMappedBody();
  void SettleQuoteCheck() const;
  void Adopt(Loaded loaded);
  void StartPrefetch();
  Status FinishPrefetch(Loaded* out);

  Env* env_ = nullptr;
  std::string raw_path_;  // as given, to open again
  std::string path_;      // for messages
  size_t chunk_bytes_ = 0;
  SegmentSizes sizes_;
  std::unique_ptr<InputData> input_;    // a mapped (or buffered) input
  std::unique_ptr<InputStream> stream_;  // a streamed input
  SpooledStream* spool_ = nullptr;       // stream_, when it is a one-pass input kept for a second pass
  std::vector<std::string> names_;
  size_t key_index_ = 0;
  size_t body_ = 0;  // where the body starts in the first segment
  std::string header_bytes_;

  // The current segment.
  std::string_view data_;
  std::string segment_;  // its bytes, when streamed
  std::string rest_;     // bytes read past it
  uint64_t segment_index_ = 0;
  uint64_t first_line_ = 1;  // line number of data_[0]
  uint64_t segment_lines_ = 0;
  uint64_t offset_ = 0;      // of data_[0] in the input
  bool at_end_ = true;       // no segment after this one
  std::optional<uint64_t> known_size_;  // once the end has been read
  // Both are set again, once, when a background quote check finds a '"'.
  mutable std::vector<ChunkRange> chunks_;
  mutable bool quote_free_ = false;  // no '"' in the segment's body: TokenizeSimple applies

  // The next segment, read in the background.
  std::thread prefetch_;
  Loaded prefetched_;
  Status prefetch_status_;

  // A large mapped file's quote check (declared after input_, which it reads).
  std::unique_ptr<BackgroundQuoteCheck> quote_check_;
  mutable std::atomic<bool> quote_check_pending_{false};
  mutable std::once_flag quote_check_settled_;
};

// Encodes the record's fields except `skip` (npos: none) as output TSV into *out (replaced).
void EncodeFields(const Record& r, size_t skip, std::string& out);

template <class OnRow>
bool Table::ScanChunk(const ChunkRange& c, Record& rec, ScanProblem* problem, OnRow&& on_row) const {
  if (!CheckEncoding(c, problem)) return false;
  const char* base = data().data();
  const size_t ncols = names_.size();
  bool ok = true;
  auto checked = [&](const Record& r) {
    if (r.fields.size() != ncols) {
      FieldCountProblem(r, problem);
      ok = false;
      return false;
    }
    on_row(r);
    return true;
  };
  TokenizeOutcome out = quote_free_ ? TokenizeSimple(base + c.begin, base + c.end, rec, checked)
                                    : Tokenize(base + c.begin, base + c.end, rec, checked);
  if (out.error != TokenizeError::kNone) {
    QuoteProblem(out.where, problem);
    return false;
  }
  return ok;
}

}  // namespace cloudmerge
