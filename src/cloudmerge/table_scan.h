// Table scanning: one TSV input opened for a merge. Owns the input's bytes, its
// header, the key column, and the split of its body into chunks that threads
// can tokenize independently.
//
// Chunks: a file that contains no '"' at all cannot have line breaks inside
// fields, so it is split at line ends into many chunks scanned in parallel. A
// file with quotes is scanned as one chunk, in order (correct, single-threaded).
//
// ScanChunk validates as it goes (UTF-8, NUL bytes, field count per row,
// unterminated quotes) and reports the first problem of the chunk with its byte
// offset; Table::Error turns it into a file/line/column message.
//
// Thread safety: after Open, a Table is read-only; ScanChunk may run on
// different chunks concurrently, each thread with its own Record.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "cloudmerge/env.h"
#include "cloudmerge/error_report.h"
#include "cloudmerge/status.h"
#include "cloudmerge/tsv_tokenizer.h"

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

class Table {
 public:
  // side is "x" or "y" (for messages); key is a 1-based position or a column name.
  static Result<std::unique_ptr<Table>> Open(Env* env, const std::string& path, const std::string& key,
                                             bool allow_numeric_header, size_t target_chunk_bytes);

  const std::string& path() const { return path_; }
  std::string_view data() const { return input_->bytes(); }
  const std::vector<std::string>& column_names() const { return names_; }
  size_t key_index() const { return key_index_; }
  const std::vector<ChunkRange>& chunks() const { return chunks_; }
  void Release(const ChunkRange& c) const { input_->Release(c.begin, c.end); }
  Status Intact() const { return input_->Intact(); }  // see InputData::Intact

  Status Error(const ScanProblem& p) const { return InputError(path_, data(), p.offset, p.what, p.fix); }

  // Tokenizes and validates one chunk, calling on_row(const Record&) per data row.
  // Returns false (and fills *problem) at the first invalid row.
  template <class OnRow>
  bool ScanChunk(const ChunkRange& c, Record& rec, ScanProblem* problem, OnRow&& on_row) const;

 private:
  Table() = default;
  bool CheckEncoding(const ChunkRange& c, ScanProblem* problem) const;
  void FieldCountProblem(const Record& rec, ScanProblem* problem) const;
  void QuoteProblem(const char* where, ScanProblem* problem) const;

  std::string path_;
  std::unique_ptr<InputData> input_;
  std::vector<std::string> names_;
  size_t key_index_ = 0;
  std::vector<ChunkRange> chunks_;
  bool quote_free_ = false;  // no '"' in the body: TokenizeSimple applies
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
