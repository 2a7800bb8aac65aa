// The AWS shared files and the process environment, read as the AWS CLI and
// SDKs read them (see shared_config.h).
#include "cloudmerge/aws/shared_config.h"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "cloudmerge/base/ascii.h"

namespace cloudmerge {
namespace {

// "# note" / "; note" after a value, when preceded by whitespace (so a ';' or
// '#' inside a value, e.g. in a URL, is kept).
std::string_view StripInlineComment(std::string_view v) {
  for (size_t i = 1; i < v.size(); ++i) {
    if ((v[i] == '#' || v[i] == ';') && (v[i - 1] == ' ' || v[i - 1] == '\t')) return v.substr(0, i);
  }
  return v;
}

std::string ExpandHome(const std::string& path, const std::string& home) {
  if (path == "~" || path.starts_with("~/")) return home + path.substr(1);
  return path;
}

std::string HomeOfCurrentUser() {
  if (const char* home = std::getenv("HOME"); home && *home) return home;
  struct passwd pw {};
  struct passwd* result = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(getuid(), &pw, buf.data(), buf.size(), &result) == 0 && result && result->pw_dir) {
    return result->pw_dir;
  }
  return "";
}

}  // namespace

AwsEnvironment AwsEnvironment::FromProcess() {
  AwsEnvironment env;
  env.getenv = [](const std::string& name) {
    const char* v = std::getenv(name.c_str());
    return std::string(v ? v : "");
  };
  env.home = HomeOfCurrentUser();
  return env;
}

std::string SectionValue(const AwsIniSection& section, const std::string& key) {
  auto it = section.find(key);
  return it == section.end() ? std::string() : it->second;
}

// ---- files ----

AwsFileText ReadAwsFile(const std::string& path) {
  AwsFileText out;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    out.why = errno == ENOENT ? "file not found" : std::strerror(errno);
    return out;
  }
  char buf[8192];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.text.append(buf, n);
  out.ok = !std::ferror(f);
  if (!out.ok) out.why = "read error";
  std::fclose(f);
  return out;
}

std::string CredentialsPath(const AwsEnvironment& env) {
  std::string p = env.getenv("AWS_SHARED_CREDENTIALS_FILE");
  return ExpandHome(p.empty() ? "~/.aws/credentials" : p, env.home);
}

std::string ConfigPath(const AwsEnvironment& env) {
  std::string p = env.getenv("AWS_CONFIG_FILE");
  return ExpandHome(p.empty() ? "~/.aws/config" : p, env.home);
}

// The variable that chose the profile ("" when it is the implicit default).
std::string ProfileVariable(const AwsEnvironment& env) {
  for (const char* var : {"AWS_PROFILE", "AWS_DEFAULT_PROFILE"}) {
    if (!env.getenv(var).empty()) return var;
  }
  return "";
}

std::string ProfileName(const AwsEnvironment& env) {
  std::string var = ProfileVariable(env);
  return var.empty() ? "default" : env.getenv(var);
}

// In ~/.aws/config a profile is "[profile NAME]", the default also "[default]";
// a bare "[NAME]" there is not a profile (as in the AWS CLI).
const AwsIniSection* ConfigProfile(const AwsIni& ini, const std::string& name) {
  const AwsIniSection* bare_default = nullptr;
  for (const auto& [header, section] : ini) {
    if (header == "default" && name == "default") bare_default = &section;
    if (header.starts_with("profile") && header.size() > 7 && IsAsciiBlank(header[7]) && TrimBlanks(header.substr(7)) == name) {
      return &section;
    }
  }
  return bare_default;
}

const AwsIniSection* CredentialsProfile(const AwsIni& ini, const std::string& name) {
  auto it = ini.find(name);
  return it == ini.end() ? nullptr : &it->second;
}

std::string ResolveRegion(const AwsEnvironment& env) {
  for (const char* var : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    std::string v = TrimBlanks(env.getenv(var));
    if (!v.empty()) return v;
  }
  std::string v = ProfileConfigValue(env, "region");
  return v.empty() ? "us-east-1" : v;
}

std::string ProfileConfigValue(const AwsEnvironment& env, const std::string& key) {
  AwsFileText file = ReadAwsFile(ConfigPath(env));
  if (!file.ok) return "";
  AwsIni ini = ParseAwsIni(file.text);
  const AwsIniSection* section = ConfigProfile(ini, ProfileName(env));
  return section ? SectionValue(*section, key) : "";
}

std::string ServicesConfigValue(const AwsEnvironment& env, const std::string& key) {
  std::string services = ProfileConfigValue(env, "services");
  if (services.empty()) return "";
  AwsFileText file = ReadAwsFile(ConfigPath(env));
  if (!file.ok) return "";
  AwsIni ini = ParseAwsIni(file.text);
  for (const auto& [header, section] : ini) {
    if (header.starts_with("services") && header.size() > 8 && IsAsciiBlank(header[8]) &&
        TrimBlanks(header.substr(8)) == services)
      return SectionValue(section, key);
  }
  return "";
}

// Sections and `key = value` lines; keys are lower-cased (as the AWS CLI's
// parser does), section names kept. An indented `sub = value` under a key with
// an empty value is a nested setting, stored as "key.sub" (the config file's
// `s3 =` block); other indented lines continue the previous value.
AwsIni ParseAwsIni(const std::string& text) {
  AwsIni out;
  AwsIniSection* section = nullptr;
  std::string last_key;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    bool indented = !line.empty() && (line.front() == ' ' || line.front() == '\t');
    std::string t = TrimBlanks(line);
    if (t.empty() || t.front() == '#' || t.front() == ';') continue;
    if (t.front() == '[') {
      size_t close = t.find(']');
      section = close == std::string::npos ? nullptr : &out[TrimBlanks(std::string_view(t).substr(1, close - 1))];
      last_key.clear();
      continue;
    }
    if (!section) continue;  // outside any (valid) section: ignored, as the CLI does
    size_t eq = t.find('=');
    if (indented && !last_key.empty()) {
      std::string& parent = (*section)[last_key];
      if (eq != std::string::npos && parent.empty()) {
        (*section)[last_key + "." + AsciiLower(TrimBlanks(std::string_view(t).substr(0, eq)))] =
            TrimBlanks(StripInlineComment(std::string_view(t).substr(eq + 1)));
      } else {
        parent += "\n" + TrimBlanks(StripInlineComment(t));
      }
      continue;
    }
    if (eq == std::string::npos) continue;
    std::string key = AsciiLower(TrimBlanks(std::string_view(t).substr(0, eq)));
    if (key.empty()) continue;
    (*section)[key] = TrimBlanks(StripInlineComment(std::string_view(t).substr(eq + 1)));
    last_key = key;
  }
  return out;
}

}  // namespace cloudmerge
