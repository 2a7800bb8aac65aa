// Error reports for bad input: where (file, line, column), what was found, and
// how to fix it, in one paragraph, in the style of tsv-utils and DuckDB's CSV
// errors. Line and column are computed from a byte offset only when an error is
// reported, so the scanning loops carry no line counters.
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct TextPosition {
  size_t line = 1;    // 1-based physical line ("\n", "\r\n" or lone "\r" end a line)
  size_t column = 1;  // 1-based, in characters (UTF-8 code points) from the line start
  size_t line_begin = 0;  // byte offset of that line
};

TextPosition PositionOf(std::string_view data, size_t offset);

// "x.tsv, line 7, column 3: <what>. <fix> Line 7: <the line, abbreviated>"
// `data` may be a piece of the file that starts at a line start: first_line is
// that line's number.
Status InputError(const std::string& file, std::string_view data, size_t offset, const std::string& what,
                  const std::string& fix, uint64_t first_line = 1);

// Shows a piece of input safely: control bytes escaped, long text abbreviated.
std::string Printable(std::string_view text, size_t max_chars = 120);

// Finds the first byte that is a NUL or breaks UTF-8 in [begin, end); returns
// end if there is none. `*what` describes the problem.
const char* FindEncodingError(const char* begin, const char* end, std::string* what);

}  // namespace cloudmerge
