#include "cloudmerge/table_scan.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "cloudmerge/key_types.h"

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

}  // namespace

Result<std::unique_ptr<Table>> Table::Open(Env* env, const std::string& path, const std::string& key,
                                           bool allow_numeric_header, size_t target_chunk_bytes) {
  auto input = env->ReadFile(path);
  if (!input.ok()) return input.status();
  std::unique_ptr<Table> t(new Table());
  t->path_ = DisplayName(path);
  t->input_ = std::move(input.value());
  std::string_view d = t->data();
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
    t->QuoteProblem(out.where, &p);
    return t->Error(p);
  }
  if (!have_header) {
    return Status::InvalidInput(fmt::format(
        "{} is empty: it has no header line. cloudmerge, like the script, needs a first line naming the columns, "
        "e.g. ID<TAB>value, followed by the data rows.",
        t->path_));
  }
  ChunkRange header_range{start, static_cast<size_t>(out.stopped_at - d.data())};
  ScanProblem enc;
  if (!t->CheckEncoding(header_range, &enc)) return t->Error(enc);
  for (const Field& f : rec.fields) t->names_.emplace_back(f.view());
  bool all_numbers = true;
  for (const std::string& n : t->names_) {
    double v;
    if (!ParseDouble(n, &v)) all_numbers = false;
  }
  if (all_numbers && !allow_numeric_header) {
    ScanProblem p{true, static_cast<size_t>(rec.begin - d.data()),
                  "the header line holds only numbers, so the file seems to have no header and its first data row "
                  "would be lost",
                  "Add a header line such as ID<TAB>value at the top; if these really are the column names, pass "
                  "--allow-numeric-header."};
    return t->Error(p);
  }
  auto key_index = ResolveKey(path, t->names_, key);
  if (!key_index.ok()) return key_index.status();
  t->key_index_ = key_index.value();

  // Chunks of the body.
  size_t body = header_range.end;
  size_t n = d.size();
  // Looking for a quote touches every page: in windows, each given back at once,
  // so that opening a file bigger than memory does not make it all resident.
  bool splittable = true;
  constexpr size_t kWindow = size_t{16} << 20;
  for (size_t w = body; w < n && splittable; w += kWindow) {
    size_t e = std::min(n, w + kWindow);
    splittable = std::memchr(d.data() + w, '"', e - w) == nullptr;
    t->input_->Release(w, e);
  }
  t->quote_free_ = splittable;
  if (!splittable || n - body <= target_chunk_bytes) {
    if (n > body) t->chunks_.push_back({body, n});
  } else {
    size_t b = body;
    while (b < n) {
      size_t e = b + target_chunk_bytes;
      if (e >= n) e = n;
      else {
        const void* nl = std::memchr(d.data() + e, '\n', n - e);
        e = nl ? static_cast<size_t>(static_cast<const char*>(nl) - d.data()) + 1 : n;
      }
      t->chunks_.push_back({b, e});
      b = e;
    }
    // Finding each line end mapped a large folio around it (sequential readahead
    // builds big ones): give those pages back too.
    t->input_->Release(body, n);
  }
  return t;
}

bool Table::CheckEncoding(const ChunkRange& c, ScanProblem* problem) const {
  const char* base = data().data();
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
