// NameSetting: an engine error says which setting to change in words; each
// caller names where its user sets it (issue 17: engine errors spoke CLI).
#include "cloudmerge/base/setting_names.h"

#include <gtest/gtest.h>

#include "cloudmerge/engine/join_limits.h"
#include "cloudmerge/io/spill_directory.h"

namespace cloudmerge {
namespace {

SettingNames Cli() {
  SettingNames n;
  n.memory_limit = "--memory-limit";
  n.temp_dir = "--temp-dir";
  n.max_output_rows = "--max-output-rows";
  return n;
}

TEST(NameSetting, AddsWhereTheCallerSetsItAndKeepsTheCode) {
  Status st = Status::NoSpace("no space left on device. Choose another temporary directory.")
                  .WithSetting(Setting::kTempDir);
  Status named = NameSetting(st, Cli());
  EXPECT_EQ(named.code(), Status::Code::kNoSpace);
  EXPECT_EQ(named.message(),
            "no space left on device. Choose another temporary directory. (The temporary directory is set by "
            "--temp-dir.)");
  EXPECT_EQ(named.setting(), Setting::kNone);
  EXPECT_EQ(NameSetting(named, Cli()).message(), named.message()) << "named once only";
}

TEST(NameSetting, LeavesOtherErrorsAlone) {
  Status plain = Status::InvalidInput("x.tsv, line 3: bad");
  EXPECT_EQ(NameSetting(plain, Cli()).message(), plain.message());
  Status unnamed = Status::IOError("raise the memory limit").WithSetting(Setting::kMemoryLimit);
  EXPECT_EQ(NameSetting(unnamed, SettingNames{}).message(), "raise the memory limit");
}

TEST(NameSetting, EngineErrorsNameTheSettingNotAFlag) {
  auto dir = SpillDirectory::Create("/no/such/cloudmerge/parent", nullptr);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().setting(), Setting::kTempDir);
  EXPECT_EQ(dir.status().message().find("--"), std::string::npos) << dir.status().message();
  EXPECT_NE(NameSetting(dir.status(), Cli()).message().find("set by --temp-dir"), std::string::npos);

  MergeStats s;
  s.output_rows = 5000;
  Status refused = OutputRowLimitError(s, 1000);
  EXPECT_EQ(refused.setting(), Setting::kMaxOutputRows);
  EXPECT_EQ(refused.message().find("--"), std::string::npos) << refused.message();
  EXPECT_NE(NameSetting(refused, Cli()).message().find("set by --max-output-rows"), std::string::npos);
}

}  // namespace
}  // namespace cloudmerge
