#include "cloudmerge/engine/table_scan.h"

#include <string.h>  // memrchr

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "cloudmerge/engine/key_types.h"

namespace cloudmerge {
namespace {

std::string DisplayName(const std::string& path) { return path == "-" ? "standard input" : path; }

Result<size_t> ResolveKey(const std::string& path, const std::vector<std::string>& names, const std::string& key) {
  bool numeric = !key.empty() && key.find_first_not_of("0123456789") == std::string::npos;
  if (numeric) {
    size_t pos = std::stoul(key);
    if (pos >= 1 && pos <= names.size()) return pos - 1;
    return Status::InvalidArgument(fmt::format(
        "key column {} does not exist in {}: it has {} column(s). Give a position from 1 to {} or a column name.", key,
        DisplayName(path), names.size(), names.size()));
  }
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == key) return i;
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) list += (i ? ", " : "") + fmt::format("'{}'", Printable(names[i], 40));
  return Status::InvalidArgument(fmt::format("key column '{}' is not in the header of {}, whose columns are: {}. "
                                             "Names are case-sensitive; a position (1, 2, ...) also works.",
                                             key, DisplayName(path), list));
}

// ---- Streamed segments ---------------------------------------------------------

// Where a segment read from a stream may end: after the last line end in `b`
// that is certainly a record's end. 0 when there is none yet (read more).
size_t FindCut(std::string_view b) {
  const char* nl = static_cast<const char*>(memrchr(b.data(), '\n', b.size()));
  size_t cut = nl ? static_cast<size_t>(nl - b.data()) + 1 : 0;
  // A lone "\r" (old Mac line ends) also ends a line, unless it is the last byte
  // read: a "\n" may follow in the next read.
  if (b.size() >= 2 && cut < b.size() - 1) {
    const char* cr = static_cast<const char*>(memrchr(b.data() + cut, '\r', b.size() - 1 - cut));
    if (cr) cut = static_cast<size_t>(cr - b.data()) + 1;
  }
  if (cut == 0 || std::memchr(b.data(), '"', cut) == nullptr) return cut;
  // A line end inside a quoted field is data: tokenize up to the cut, and if a
  // quoted field is still open there, end the segment before its record.
  Record rec;
  TokenizeOutcome o = Tokenize(b.data(), b.data() + cut, rec, [](const Record&) { return true; });
  if (o.error == TokenizeError::kNone) return cut;
  return static_cast<size_t>(rec.begin - b.data());
}

// Line ends as PositionOf counts them: "\n", "\r\n" and a lone "\r" are one each.
uint64_t CountLineEnds(std::string_view b) {
  uint64_t n = static_cast<uint64_t>(std::count(b.begin(), b.end(), '\n'));
  if (std::memchr(b.data(), '\r', b.size()) != nullptr)
    for (size_t i = 0; i < b.size(); ++i)
      if (b[i] == '\r' && (i + 1 >= b.size() || b[i + 1] != '\n')) ++n;
  return n;
}

}  // namespace

Status Table::LoadSegment(InputStream* stream, const std::string& path, std::string carry, size_t target,
                          size_t max_record, uint64_t first_line, Loaded* out) {
  std::string buf = std::move(carry);
  size_t want = std::max<size_t>(target, 1);
  bool eof = false;
  for (;;) {
    // Reserve up to a typical segment; a larger first segment (y, read whole
    // when small) grows as it is read rather than claiming its maximum up front.
    if (buf.capacity() < want) buf.reserve(std::min<size_t>(want, size_t{64} << 20));
    while (!eof && buf.size() < want) {
      size_t before = buf.size();
      CM_RETURN_IF_ERROR(stream->Read(std::min<size_t>(want - buf.size(), size_t{8} << 20), &buf));
      eof = buf.size() == before;
    }
    if (eof) {
      out->bytes = std::move(buf);
      out->rest.clear();
      out->at_end = true;
      break;
    }
    size_t cut = FindCut(buf);
    if (cut > 0) {
      out->rest.assign(buf, cut, std::string::npos);
      buf.resize(cut);
      out->bytes = std::move(buf);
      out->at_end = false;
      break;
    }
    if (want >= max_record) {
      return Status::InvalidInput(fmt::format(
          "{}, line {}: one record runs on for more than {} MiB without ending, the longest allowed (an eighth of "
          "the memory limit): either a quoted field (\"...) is never closed, or the input has no line breaks (is it "
          "really a TSV file?). Close the quote, or write a literal quote inside a quoted field as two quotes "
          "(\"\"); if the records really are this long, raise the memory limit.",
          path, first_line, max_record >> 20)).WithSetting(Setting::kMemoryLimit);
    }
    want = std::min(want * 2, max_record);  // one record longer than a segment: read on
  }
  out->lines = CountLineEnds(out->bytes);
  return Status::OK();
}

void Table::Adopt(Loaded loaded) {
  segment_ = std::move(loaded.bytes);
  rest_ = std::move(loaded.rest);
  at_end_ = loaded.at_end;
  segment_lines_ = loaded.lines;
  data_ = segment_;
  if (at_end_) known_size_ = offset_ + segment_.size();
}

void Table::StartPrefetch() {
  prefetch_status_ = Status::OK();
  prefetched_ = Loaded();
  prefetch_ = std::thread([this, carry = std::move(rest_), first_line = first_line_ + segment_lines_]() mutable {
    prefetch_status_ =
        LoadSegment(stream_.get(), path_, std::move(carry), sizes_.rest, sizes_.max_record, first_line, &prefetched_);
  });
}

Status Table::FinishPrefetch(Loaded* out) {
  prefetch_.join();
  CM_RETURN_IF_ERROR(prefetch_status_);
  *out = std::move(prefetched_);
  return Status::OK();
}

Table::~Table() {
  if (prefetch_.joinable()) prefetch_.join();
  quote_check_.reset();  // before the mapping it reads goes
}

Result<bool> Table::NextSegment() {
  if (at_end_) return false;
  Loaded next;
  if (prefetch_.joinable()) {
    CM_RETURN_IF_ERROR(FinishPrefetch(&next));
  } else {
    CM_RETURN_IF_ERROR(LoadSegment(stream_.get(), path_, std::move(rest_), sizes_.rest, sizes_.max_record,
                                   first_line_ + segment_lines_, &next));
  }
  offset_ += segment_.size();
  first_line_ += segment_lines_;
  ++segment_index_;
  Adopt(std::move(next));
  SplitChunks(0);
  if (!at_end_) StartPrefetch();
  return true;
}

Status Table::Rewind() {
  if (!stream_ || segment_index_ == 0) return Status::OK();
  if (prefetch_.joinable()) prefetch_.join();
  if (spool_ != nullptr) {
    CM_RETURN_IF_ERROR(spool_->Rewind());  // read once: the copy kept in the temp dir, then on
  } else {
    stream_.reset();
    auto stream = env_->OpenStream(raw_path_);
    if (!stream.ok()) return stream.status();
    if (!*stream) return Status::Internal(fmt::format("{} could not be opened again as a stream", path_));
    stream_ = std::move(stream.value());
  }
  Loaded first;
  CM_RETURN_IF_ERROR(LoadSegment(stream_.get(), path_, std::string(), sizes_.first, sizes_.max_record, 1, &first));
  offset_ = 0;
  first_line_ = 1;
  segment_index_ = 0;
  Adopt(std::move(first));
  if (data_.substr(0, body_) != header_bytes_)
    return Status::IOError(fmt::format("{} changed while being read: its header is not the same on the second "
                                       "read. Run again once it is no longer being written.",
                                       path_));
  SplitChunks(body_);
  if (!at_end_) StartPrefetch();
  return Status::OK();
}

uint64_t Table::size() const {
  if (!stream_) return data_.size();
  if (known_size_) return *known_size_;
  return std::max<uint64_t>(stream_->size_hint(), offset_ + segment_.size() + rest_.size());
}

Status Table::Error(const ScanProblem& p) const {
  return InputError(path_, data_, p.offset, p.what, p.fix, first_line_);
}

Result<std::unique_ptr<Table>> Table::Open(Env* env, const std::string& path, const std::string& key,
                                           bool allow_numeric_header, size_t target_chunk_bytes,
                                           SegmentSizes segments) {
  std::unique_ptr<Table> t(new Table());
  t->env_ = env;
  t->raw_path_ = path;
  t->path_ = DisplayName(path);
  t->chunk_bytes_ = target_chunk_bytes;
  t->sizes_ = segments;
  Result<std::unique_ptr<InputStream>> stream = env->OpenStream(path);
  if (!stream.ok()) return stream.status();
  if (*stream) {
    if ((*stream)->reopenable()) {
      t->stream_ = std::move(stream.value());
    } else {
      auto spool = std::make_unique<SpooledStream>(std::move(stream.value()), t->path_, segments.temp_dir);
      t->spool_ = spool.get();
      t->stream_ = std::move(spool);
    }
    Loaded first;
    CM_RETURN_IF_ERROR(LoadSegment(t->stream_.get(), t->path_, std::string(), segments.first, segments.max_record, 1,
                                   &first));
    t->Adopt(std::move(first));
    // Longer than its first segment: a second pass can only come from a copy, kept from here on.
    if (t->spool_ != nullptr && !t->at_end_) t->spool_->StartSpool({t->segment_, t->rest_});
  } else {
    auto input = env->ReadFile(path);
    if (!input.ok()) return input.status();
    t->input_ = std::move(input.value());
    t->data_ = t->input_->bytes();
    t->at_end_ = true;
  }
  CM_RETURN_IF_ERROR(t->ParseHeader(allow_numeric_header, key, path));
  if (t->stream_) t->SplitChunks(t->body_);
  else t->SplitMappedBody();
  if (!t->at_end_) t->StartPrefetch();
  return t;
}

Status Table::ParseHeader(bool allow_numeric_header, const std::string& key, const std::string& raw_path) {
  std::string_view d = data_;
  size_t start = 0;
  if (d.size() >= 3 && std::memcmp(d.data(), "\xEF\xBB\xBF", 3) == 0) start = 3;  // pandas drops a UTF-8 BOM

  // Header: the first non-blank record.
  Record rec;
  bool have_header = false;
  TokenizeOutcome out = Tokenize(d.data() + start, d.data() + d.size(), rec, [&](const Record& r) {
    have_header = true;
    return false;
  });
  if (out.error == TokenizeError::kUnterminatedQuote) {
    ScanProblem p;
    QuoteProblem(out.where, &p);
    return Error(p);
  }
  if (!have_header) {
    return Status::InvalidInput(fmt::format(
        "{} is empty: it has no header line. cloudmerge, like the script, needs a first line naming the columns, "
        "e.g. ID<TAB>value, followed by the data rows.",
        path_));
  }
  ChunkRange header_range{start, static_cast<size_t>(out.stopped_at - d.data())};
  ScanProblem enc;
  if (!CheckEncoding(header_range, &enc)) return Error(enc);
  for (const Field& f : rec.fields) names_.emplace_back(f.view());
  bool all_numbers = true;
  for (const std::string& n : names_) {
    double v;
    if (!ParseDouble(n, &v)) all_numbers = false;
  }
  if (all_numbers && !allow_numeric_header) {
    ScanProblem p{true, static_cast<size_t>(rec.begin - d.data()),
                  "the header line holds only numbers, so the file seems to have no header and its first data row "
                  "would be lost",
                  "Add a header line such as ID<TAB>value at the top; if these really are the column names, allow "
                  "a numeric header."};
    return Error(p).WithSetting(Setting::kAllowNumericHeader);
  }
  auto key_index = ResolveKey(raw_path, names_, key);
  if (!key_index.ok()) return key_index.status();
  key_index_ = key_index.value();
  body_ = header_range.end;
  header_bytes_.assign(d.substr(0, body_));
  return Status::OK();
}

void Table::SplitChunks(size_t body) {
  chunks_.clear();
  std::string_view d = data_;
  size_t n = d.size();
  // Looking for a quote touches every page: in windows, each given back at once,
  // so that opening a file bigger than memory does not make it all resident.
  bool splittable = true;
  constexpr size_t kWindow = size_t{16} << 20;
  for (size_t w = body; w < n && splittable; w += kWindow) {
    size_t e = std::min(n, w + kWindow);
    splittable = std::memchr(d.data() + w, '"', e - w) == nullptr;
    if (input_) input_->Release(w, e);
  }
  quote_free_ = splittable;
  if (!splittable || n - body <= chunk_bytes_) {
    if (n > body) chunks_.push_back({body, n});
    return;
  }
  SplitAtLineEnds(body, chunk_bytes_);
}

void Table::SplitAtLineEnds(size_t body, size_t chunk_bytes) {
  chunks_.clear();
  std::string_view d = data_;
  size_t n = d.size();
  constexpr size_t kWindow = size_t{16} << 20;
  // Finding each line end maps the large folio around it (sequential readahead
  // builds big ones, often bigger than a chunk), so the file would become
  // resident as a whole: give the pages back as the search goes, in windows.
  size_t b = body, released = body;
  while (b < n) {
    size_t e = b + chunk_bytes;
    if (e >= n) e = n;
    else {
      const void* nl = std::memchr(d.data() + e, '\n', n - e);
      e = nl ? static_cast<size_t>(static_cast<const char*>(nl) - d.data()) + 1 : n;
    }
    chunks_.push_back({b, e});
    b = e;
    if (input_ && b - released >= kWindow) {
      input_->Release(released, n);  // to the end: the folio mapped around b reaches past it
      released = b;
    }
  }
  if (input_) input_->Release(body, n);
}

// Chunks end at the first line end after each point of a grid (body + k *
// chunk_bytes), so that every point is known before any is read: the pages
// around all of them are asked for at once (InputData::WillNeed). For a file not
// in the page cache, seeking line ends one after another instead waited for
// the disk thousands of times, each time reading a whole readahead window
// (8 MiB here: together, most of the file).
void Table::SplitAtGrid(size_t body, size_t chunk_bytes) {
  chunks_.clear();
  const std::string_view d = data_;
  const size_t n = d.size();
  constexpr size_t kProbe = size_t{16} << 10;  // a line end is nearly always this close
  constexpr size_t kWindow = size_t{16} << 20;
  if (input_)
    for (size_t g = body + chunk_bytes; g < n; g += chunk_bytes) input_->WillNeed(g, std::min(n, g + kProbe));
  size_t b = body, released = body;
  for (size_t g = body + chunk_bytes; b < n; g += chunk_bytes) {
    if (g < b) continue;  // inside the line that ended the last chunk
    size_t e = n;
    if (g < n) {
      const void* nl = std::memchr(d.data() + g, '\n', n - g);
      if (nl) e = static_cast<size_t>(static_cast<const char*>(nl) - d.data()) + 1;
    }
    chunks_.push_back({b, e});
    b = e;
    if (input_ && b - released >= kWindow) {  // as SplitAtLineEnds
      input_->Release(released, n);
      released = b;
    }
  }
  if (input_) input_->Release(body, n);
}

void Table::SplitMappedBody() {
  const size_t n = data_.size();
  if (n - body_ <= chunk_bytes_ || n - body_ < sizes_.quote_check_ahead_from) {
    SplitChunks(body_);
    return;
  }
  // Split first, check in the background (table_scan.h). Chunks of at least
  // 1/4096 of the body: each line end sought at open reads from disk when the
  // file is not cached, and 4096 of them take a moment, not a pass.
  constexpr size_t kMaxChunks = 4096;
  const size_t chunk = std::max(chunk_bytes_, (n - body_) / kMaxChunks);
  // Far enough ahead that the scan does not wait for the disk (up to 512 MiB),
  // near enough that the pages checked are still cached when the scan reads them.
  const size_t lookahead = std::min(size_t{512} << 20, std::max(4 * chunk, (n - body_) / 16));
  quote_free_ = true;
  SplitAtGrid(body_, chunk);
  quote_check_ = std::make_unique<BackgroundQuoteCheck>(input_.get(), data_, body_, lookahead);
  quote_check_pending_.store(true, std::memory_order_release);
}

void Table::SettleQuoteCheck() const {
  std::call_once(quote_check_settled_, [this] {
    if (quote_check_->Finish() != BackgroundQuoteCheck::kNone) {
      quote_free_ = false;
      chunks_.assign(1, ChunkRange{body_, data_.size()});
    }
    quote_check_pending_.store(false, std::memory_order_release);
  });
}

bool Table::CheckEncoding(const ChunkRange& c, ScanProblem* problem) const {
  const char* base = data_.data();
  std::string what;
  const char* bad = FindEncodingError(base + c.begin, base + c.end, &what);
  if (bad == base + c.end) return true;
  problem->found = true;
  problem->offset = static_cast<size_t>(bad - base);
  problem->what = what;
  problem->fix = what.find("NUL") != std::string::npos
                     ? "Check that this is the right file; a TSV file holds text only."
                     : "cloudmerge reads UTF-8, as pandas does; convert the file first, e.g. "
                       "iconv -f latin1 -t utf-8 in.tsv > in.utf8.tsv.";
  return false;
}

void Table::FieldCountProblem(const Record& rec, ScanProblem* problem) const {
  const char* base = data().data();
  size_t ncols = names_.size();
  problem->found = true;
  if (rec.fields.size() > ncols && !rec.has_quote_char) {
    problem->offset = static_cast<size_t>(rec.fields[ncols].data - base);
  } else {
    problem->offset = static_cast<size_t>((rec.fields.size() > ncols ? rec.begin : rec.end) - base);
  }
  problem->what = fmt::format("this row has {} field(s) but the header has {}", rec.fields.size(), ncols);
  problem->fix = rec.fields.size() > ncols
                     ? "Remove the extra tab(s), or quote a value that contains a tab (\"a<TAB>b\")."
                     : "Every row needs a value (possibly empty) for each column: add the missing tab-separated "
                       "field(s).";
}

void Table::QuoteProblem(const char* where, ScanProblem* problem) const {
  problem->found = true;
  problem->offset = static_cast<size_t>(where - data().data());
  problem->what = "a quoted field starts here but its closing quote is never found before the end of the file";
  problem->fix = "Close the quote, or write a literal quote inside a quoted field as two quotes (\"\").";
}

void EncodeFields(const Record& r, size_t skip, std::string& out) {
  out.clear();
  bool first = true;
  for (size_t i = 0; i < r.fields.size(); ++i) {
    if (i == skip) continue;
    if (!first) out.push_back('\t');
    first = false;
    AppendEncoded(out, r.fields[i].view());
  }
}

}  // namespace cloudmerge
