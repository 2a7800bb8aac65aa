// Text that came from outside (job names, job.json, a command's error output)
// on its way into JSON documents, logs, emails and pages: never an exception,
// never unbounded.
//   DumpJson    JSON text with invalid UTF-8 replaced by U+FFFD (nlohmann's
//               default handler throws type_error.316, which aborted workers);
//   Quote       one line: control bytes and invalid UTF-8 escaped (\xNN),
//               cut at max_chars characters with "…" (error_report.h's Printable);
//   QuoteLines  the same, line by line, keeping the last max_bytes: for a
//               program's error output, whose end says what went wrong.
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cloudmerge {

// How much of an input any message quotes (issue 15: a 50 MB job.json key was
// echoed into a 137 MB email).
inline constexpr size_t kQuoteChars = 200;

std::string DumpJson(const nlohmann::json& j, int indent = -1);
std::string Quote(std::string_view text, size_t max_chars = kQuoteChars);
std::string QuoteLines(std::string_view text, size_t max_bytes);

}  // namespace cloudmerge
