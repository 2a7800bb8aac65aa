// job.json parsing, job naming and run identities.
#include "cloudmerge/pipeline/job.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/aws/sha256.h"
#include "cloudmerge/report/safe_text.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

Status SpecError(const std::string& where, const std::string& what) {
  return Status::InvalidInput(fmt::format(
      "{}: {}. job.json is optional; when present it is a JSON object such as "
      "{{\"key\": \"ID\", \"output\": \"merged.tsv\", \"recipients\": [\"you@example.org\"]}}.",
      where, what));
}

// Longest column name, output name and address accepted: longer ones are
// not typos but attempts to make every message that quotes them huge.
constexpr size_t kMaxColumnName = 1024;
constexpr size_t kMaxOutputName = 255;  // one file name
constexpr size_t kMaxAddress = 254;     // RFC 5321's path limit
constexpr size_t kMaxRecipients = 50;

Result<std::string> KeyField(const json& j, const char* name, const std::string& where) {
  const json& v = j.at(name);
  if (v.is_string() && v.get<std::string>().size() > kMaxColumnName)
    return SpecError(where, fmt::format("\"{}\" is {} bytes long: a column name has at most {}", name,
                                        v.get<std::string>().size(), kMaxColumnName));
  if (v.is_string() && !v.get<std::string>().empty()) return v.get<std::string>();
  if (v.is_number_unsigned() && v.get<uint64_t>() >= 1) return std::to_string(v.get<uint64_t>());
  return SpecError(where, fmt::format("\"{}\" must be a column name or a 1-based column number", name));
}

}  // namespace

Result<JobSpec> ParseJobSpec(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return SpecError(where, "not valid JSON");
  if (!j.is_object()) return SpecError(where, "not a JSON object");
  static const char* kKnown[] = {"key", "x_key", "y_key", "output", "any_order", "recipients", "engine", "command",
                                 "pandas_version"};
  JobSpec spec;
  for (auto& [name, value] : j.items()) {
    if (std::find(std::begin(kKnown), std::end(kKnown), name) == std::end(kKnown))
      return SpecError(where, fmt::format("unknown field \"{}\" (known: key, x_key, y_key, output, any_order, "
                                          "recipients, engine, command, pandas_version)",
                                          Quote(name)));
  }
  if (j.contains("key")) {
    auto k = KeyField(j, "key", where);
    if (!k.ok()) return k.status();
    spec.x_key = spec.y_key = *k;
  }
  for (auto [field, target] : {std::pair{"x_key", &spec.x_key}, std::pair{"y_key", &spec.y_key}}) {
    if (!j.contains(field)) continue;
    auto k = KeyField(j, field, where);
    if (!k.ok()) return k.status();
    *target = *k;
  }
  if (j.contains("output")) {
    if (!j["output"].is_string()) return SpecError(where, "\"output\" must be a file name such as \"merged.tsv\"");
    spec.output = j["output"].get<std::string>();
    Status st = CheckKey(spec.output);
    if (!st.ok() || spec.output.find('/') != std::string::npos || spec.output.size() > kMaxOutputName)
      return SpecError(where, fmt::format("\"output\" \"{}\" must be a plain file name (no '/', at most {} bytes)",
                                          Quote(spec.output), kMaxOutputName));
    if (IsReservedOutputName(spec.output))
      return SpecError(where, fmt::format("\"output\" \"{}\" is a name the pipeline writes itself (report.json, "
                                          "report.html, _state, done.json, failed.json, hidden names): the report "
                                          "would replace the result. Choose another name, such as \"merged.tsv\"",
                                          Quote(spec.output)));
  }
  if (j.contains("any_order")) {
    if (!j["any_order"].is_boolean()) return SpecError(where, "\"any_order\" must be true or false");
    spec.any_order = j["any_order"].get<bool>();
  }
  if (j.contains("recipients")) {
    const json& r = j["recipients"];
    if (!r.is_array()) return SpecError(where, "\"recipients\" must be a list of email addresses");
    if (r.size() > kMaxRecipients)
      return SpecError(where, fmt::format("\"recipients\" lists {} addresses: at most {}", r.size(), kMaxRecipients));
    for (const auto& a : r) {
      if (!a.is_string() || a.get<std::string>().size() > kMaxAddress || a.get<std::string>().find('@') == std::string::npos ||
          a.get<std::string>().find_first_of("\r\n<>,; ") != std::string::npos)
        return SpecError(where, "every entry of \"recipients\" must be one email address like you@example.org");
      spec.recipients.push_back(a.get<std::string>());
    }
  }
  if (j.contains("engine")) {
    if (!j["engine"].is_string())
      return SpecError(where, fmt::format("\"engine\" must be one of {}", EngineKindNames()));
    auto kind = ParseEngineKind(j["engine"].get<std::string>());
    if (!kind.ok())
      return SpecError(where, fmt::format("engine \"{}\" is not known: use {}", Quote(j["engine"].get<std::string>()),
                                          EngineKindNames()));
    spec.engine = *kind;
  }
  if (j.contains("command")) {
    const json& c = j["command"];
    if (c.is_array())
      return SpecError(where, "\"command\" must be the name of a command the operator registered on the worker, such "
                              "as \"analysis_v2\": a job cannot give a program or its arguments");
    if (!c.is_string() || c.get<std::string>().empty() || c.get<std::string>().size() > 64)
      return SpecError(where, "\"command\" must be the name (at most 64 characters) of a command the operator "
                              "registered on the worker, such as \"analysis_v2\"");
    spec.command = c.get<std::string>();
  }
  if (j.contains("pandas_version")) {
    const json& v = j["pandas_version"];
    if (!v.is_string() || !ParsePandasVersion(v.get<std::string>(), &spec.pandas.version))
      return SpecError(where, "\"pandas_version\" must be one of \"1.5\", \"2.2\", \"3.0\", \"3.1\" (a string; \"1\", "
                              "\"2\", \"3\" mean 1.5, 2.2, 3.1)");
    if (spec.pandas.version != PandasVersion::k1_5 && spec.engine != EngineKind::kNative)
      return SpecError(where, "\"pandas_version\" other than \"1.5\" needs engine \"native\" (the default): the "
                              "cluster engines reproduce pandas 1.5 and \"command\" runs the script's own pandas");
  }
  if (spec.engine == EngineKind::kCommand && spec.command.empty())
    return SpecError(where, "engine \"command\" needs \"command\": the name of a command the operator registered");
  return spec;
}

bool IsReservedOutputName(const std::string& name) {
  return name.rfind("report.", 0) == 0 || name.rfind("_state", 0) == 0 || name == "done.json" ||
         name == "failed.json" || name.empty() || name[0] == '.';
}

std::optional<std::string> JobForKey(const std::string& key, const JobNaming& naming) {
  size_t slash = key.rfind('/');
  if (slash == std::string::npos || slash == 0) return std::nullopt;
  std::string base = key.substr(slash + 1);
  for (const std::string& name : {naming.x_name, naming.y_name, naming.spec_name}) {
    if (base == name || (name != naming.spec_name && (base == name + ".gz" || base == name + ".zst")))
      return key.substr(0, slash);
  }
  return std::nullopt;
}

namespace {
std::string Stem(const std::string& name) {
  std::string out;
  for (char c : name.substr(0, name.find('.'))) {
    if (c == '-' || c == ' ') c = '_';
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}
}  // namespace

std::optional<std::string> NearMissInputName(const std::string& base, const JobNaming& naming) {
  for (const std::string& name : {naming.x_name, naming.y_name}) {
    if (base == name || base == name + ".gz" || base == name + ".zst") return std::nullopt;
  }
  std::string stem = Stem(base);
  if (stem.empty()) return std::nullopt;
  for (const std::string& name : {naming.x_name, naming.y_name})
    if (stem == Stem(name)) return name;
  return std::nullopt;
}

std::optional<std::string> JobForUpload(const std::string& key, const JobNaming& naming) {
  if (auto job = JobForKey(key, naming)) return job;
  size_t slash = key.rfind('/');
  if (slash == std::string::npos || slash == 0) return std::nullopt;
  if (NearMissInputName(key.substr(slash + 1), naming)) return key.substr(0, slash);
  return std::nullopt;
}

std::string JobInputs::RunId() const {
  std::string ident = fmt::format("x={}:{}:{}\ny={}:{}:{}\n", x.key, x.size, x.etag, y.key, y.size, y.etag);
  if (spec) ident += fmt::format("spec={}:{}:{}\n", spec->key, spec->size, spec->etag);
  return Sha256Hex(ident).substr(0, 20);
}

Result<std::optional<JobInputs>> FindJobInputs(JobStore* store, const std::string& job, const JobNaming& naming) {
  CM_RETURN_IF_ERROR(CheckKey(job));
  auto find = [&](const std::string& name, bool compressed_too) -> Result<std::optional<StoredObject>> {
    for (const char* suffix : {"", ".gz", ".zst"}) {
      if (!compressed_too && *suffix) break;
      auto h = store->Head(job + "/" + name + suffix);
      if (!h.ok() || h->has_value()) return h;
    }
    return std::optional<StoredObject>();
  };
  auto x = find(naming.x_name, true);
  if (!x.ok()) return x.status();
  auto y = find(naming.y_name, true);
  if (!y.ok()) return y.status();
  if (!x->has_value() || !y->has_value()) return std::optional<JobInputs>();
  auto spec = find(naming.spec_name, false);
  if (!spec.ok()) return spec.status();
  return std::optional<JobInputs>(JobInputs{**x, **y, *spec});
}

}  // namespace cloudmerge
