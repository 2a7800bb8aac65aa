// SettingNames: how one caller's user spells the settings an error may ask them
// to change (Status::setting()): the CLI by its flags, serve by its flags, the
// Lambda runtime by the function's configuration and environment variables.
// The engine's messages say "raise the memory limit"; NameSetting adds where
// this caller's user sets it, once, where the error is printed, logged or emailed.
// Thread safety: plain data and pure functions.
#pragma once

#include <string>

#include "cloudmerge/base/status.h"

namespace cloudmerge {

struct SettingNames {
  // How the user sets each ("--memory-limit", "TMPDIR", ...); "": not settable here.
  std::string memory_limit, temp_dir, max_output_rows, max_decompressed_size, allow_numeric_header;
  const std::string& Of(Setting s) const;
};

// st with a sentence added that names where its setting is set, e.g. "... raise
// the memory limit. (The memory limit is set by --memory-limit.)"; code kept,
// setting cleared (so naming twice adds nothing). Unchanged when st names no
// setting or `names` has none for it.
Status NameSetting(const Status& st, const SettingNames& names);

}  // namespace cloudmerge
