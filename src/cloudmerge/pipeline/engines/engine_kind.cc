// The one table of engine names.
#include "cloudmerge/pipeline/engines/engine_kind.h"

#include <fmt/format.h>

namespace cloudmerge {
namespace {

constexpr EngineKind kAll[] = {EngineKind::kNative, EngineKind::kCommand, EngineKind::kSpark,
                               EngineKind::kEmrServerless, EngineKind::kEmr, EngineKind::kAuto};

}  // namespace

const char* EngineKindName(EngineKind kind) {
  switch (kind) {
    case EngineKind::kNative: return "native";
    case EngineKind::kCommand: return "command";
    case EngineKind::kSpark: return "spark";
    case EngineKind::kEmrServerless: return "emr-serverless";
    case EngineKind::kEmr: return "emr";
    case EngineKind::kAuto: return "auto";
  }
  return "?";
}

Result<EngineKind> ParseEngineKind(std::string_view name) {
  for (EngineKind k : kAll)
    if (name == EngineKindName(k)) return k;
  return Status::InvalidArgument(fmt::format("unknown engine \"{}\": use one of {}", name, EngineKindNames()));
}

bool IsClusterEngine(EngineKind kind) {
  return kind == EngineKind::kSpark || kind == EngineKind::kEmrServerless || kind == EngineKind::kEmr;
}

std::string EngineKindNames() {
  std::string out;
  for (EngineKind k : kAll) {
    if (!out.empty()) out += k == kAll[std::size(kAll) - 1] ? " or " : ", ";
    out += fmt::format("\"{}\"", EngineKindName(k));
  }
  return out;
}

}  // namespace cloudmerge
