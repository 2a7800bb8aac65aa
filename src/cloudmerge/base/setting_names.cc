#include "cloudmerge/base/setting_names.h"

#include <fmt/format.h>

namespace cloudmerge {
namespace {

// Where the user changes the setting, as a sentence around its name.
std::string WhereSet(Setting s, const std::string& name) {
  switch (s) {
    case Setting::kMemoryLimit: return fmt::format("The memory limit is set by {}.", name);
    case Setting::kTempDir: return fmt::format("The temporary directory is set by {}.", name);
    case Setting::kMaxOutputRows: return fmt::format("The output-row limit is set by {}.", name);
    case Setting::kMaxDecompressedSize: return fmt::format("The limit for decompressed size is set by {}.", name);
    case Setting::kAllowNumericHeader: return fmt::format("A numeric header line is allowed by {}.", name);
    case Setting::kNone: break;
  }
  return "";
}

}  // namespace

const std::string& SettingNames::Of(Setting s) const {
  static const std::string kNoName;
  switch (s) {
    case Setting::kMemoryLimit: return memory_limit;
    case Setting::kTempDir: return temp_dir;
    case Setting::kMaxOutputRows: return max_output_rows;
    case Setting::kMaxDecompressedSize: return max_decompressed_size;
    case Setting::kAllowNumericHeader: return allow_numeric_header;
    case Setting::kNone: break;
  }
  return kNoName;
}

Status NameSetting(const Status& st, const SettingNames& names) {
  if (st.ok() || st.setting() == Setting::kNone) return st;
  const std::string& name = names.Of(st.setting());
  if (name.empty()) return st;
  return st.WithMessage(fmt::format("{} ({})", st.message(), WhereSet(st.setting(), name))).WithSetting(Setting::kNone);
}

}  // namespace cloudmerge
