// job.json parsing, job naming and run identities.
#include "cloudmerge/pipeline/job.h"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/aws/sigv4.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

Status SpecError(const std::string& where, const std::string& what) {
  return Status::InvalidInput(fmt::format(
      "{}: {}. job.json is optional; when present it is a JSON object such as "
      "{{\"key\": \"ID\", \"output\": \"merged.tsv\", \"recipients\": [\"you@example.org\"]}}.",
      where, what));
}

Result<std::string> KeyField(const json& j, const char* name, const std::string& where) {
  const json& v = j.at(name);
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
                                          name));
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
    if (!st.ok() || spec.output.find('/') != std::string::npos || spec.output.rfind("_state", 0) == 0 ||
        spec.output == "report.json")
      return SpecError(where, "\"output\" must be a plain file name (no '/', not report.json or _state)");
  }
  if (j.contains("any_order")) {
    if (!j["any_order"].is_boolean()) return SpecError(where, "\"any_order\" must be true or false");
    spec.any_order = j["any_order"].get<bool>();
  }
  if (j.contains("recipients")) {
    const json& r = j["recipients"];
    if (!r.is_array()) return SpecError(where, "\"recipients\" must be a list of email addresses");
    for (const auto& a : r) {
      if (!a.is_string() || a.get<std::string>().find('@') == std::string::npos ||
          a.get<std::string>().find_first_of("\r\n<>,; ") != std::string::npos)
        return SpecError(where, "every entry of \"recipients\" must be one email address like you@example.org");
      spec.recipients.push_back(a.get<std::string>());
    }
  }
  if (j.contains("engine")) {
    static const char* kEngines[] = {"native", "command", "spark", "emr-serverless", "emr", "auto"};
    constexpr const char* kList = "\"native\", \"command\", \"spark\", \"emr-serverless\", \"emr\" or \"auto\"";
    if (!j["engine"].is_string()) return SpecError(where, fmt::format("\"engine\" must be one of {}", kList));
    spec.engine = j["engine"].get<std::string>();
    if (std::find(std::begin(kEngines), std::end(kEngines), spec.engine) == std::end(kEngines))
      return SpecError(where, fmt::format("engine \"{}\" is not known: use {}", spec.engine, kList));
  }
  if (j.contains("command")) {
    const json& c = j["command"];
    if (!c.is_array() || c.empty())
      return SpecError(where, "\"command\" must be a list such as [\"python3\", \"analysis.py\", \"{x}\", \"{y}\", "
                              "\"{out}\"]");
    for (const auto& a : c) {
      if (!a.is_string()) return SpecError(where, "every entry of \"command\" must be a string");
      spec.command.push_back(a.get<std::string>());
    }
  }
  if (j.contains("pandas_version")) {
    const json& v = j["pandas_version"];
    if (!v.is_string() || !ParsePandasVersion(v.get<std::string>(), &spec.pandas.version))
      return SpecError(where, "\"pandas_version\" must be one of \"1.5\", \"2.2\", \"3.0\", \"3.1\" (a string; \"1\", "
                              "\"2\", \"3\" mean 1.5, 2.2, 3.1)");
    if (spec.pandas.version != PandasVersion::k1_5 && spec.engine != "native")
      return SpecError(where, "\"pandas_version\" other than \"1.5\" needs engine \"native\" (the default): the "
                              "cluster engines reproduce pandas 1.5 and \"command\" runs the script's own pandas");
  }
  if (spec.engine == "command" && spec.command.empty())
    return SpecError(where, "engine \"command\" needs a \"command\" list with {x}, {y} and {out} placeholders");
  return spec;
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
