// The AWS shared files (~/.aws/credentials, ~/.aws/config, or the paths in
// AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE) and the environment, read as
// the AWS CLI and SDKs read them: which profile (AWS_PROFILE, else "default"),
// its settings, the `[services NAME]` section it names, the region. The
// credentials chain (credentials.h) and endpoint resolution (endpoints.h) both
// read them here. Files are read afresh on each call: they are small, and a
// long-running serve should see an edit.
// Thread safety: pure functions over an AwsEnvironment.
#pragma once

#include <functional>
#include <map>
#include <string>

namespace cloudmerge {

// Where the chain looks; tests fill it instead of touching the real process
// environment and home directory.
struct AwsEnvironment {
  std::function<std::string(const std::string&)> getenv = [](const std::string&) { return std::string(); };  // "" when unset
  std::string home;                                       // for ~/.aws
  static AwsEnvironment FromProcess();
};

// One INI file: section name -> key -> value.
using AwsIniSection = std::map<std::string, std::string>;
using AwsIni = std::map<std::string, AwsIniSection>;

// INI parsing of the shared files (keys lower-cased; exposed for tests).
AwsIni ParseAwsIni(const std::string& text);

struct AwsFileText {
  bool ok = false;
  std::string text;
  std::string why;  // when !ok: "file not found", "Permission denied", ...
};
AwsFileText ReadAwsFile(const std::string& path);

std::string CredentialsPath(const AwsEnvironment& env);  // ~ expanded
std::string ConfigPath(const AwsEnvironment& env);
// The variable that chose the profile ("" when it is the implicit default), and the profile.
std::string ProfileVariable(const AwsEnvironment& env);
std::string ProfileName(const AwsEnvironment& env);
// In ~/.aws/config a profile is "[profile NAME]", the default also "[default]";
// in ~/.aws/credentials it is "[NAME]". Null when absent.
const AwsIniSection* ConfigProfile(const AwsIni& ini, const std::string& name);
const AwsIniSection* CredentialsProfile(const AwsIni& ini, const std::string& name);
std::string SectionValue(const AwsIniSection& section, const std::string& key);  // "" when absent

// Region: AWS_REGION, AWS_DEFAULT_REGION, then the profile's `region`, else us-east-1.
std::string ResolveRegion(const AwsEnvironment& env);
// The profile's value of `key` in ~/.aws/config (e.g. "endpoint_url", "s3.addressing_style"), or "".
std::string ProfileConfigValue(const AwsEnvironment& env, const std::string& key);
// The value of `key` (e.g. "sns.endpoint_url") in the "[services NAME]" section
// the profile names with `services = NAME`, or "" (the SDKs' per-service config).
std::string ServicesConfigValue(const AwsEnvironment& env, const std::string& key);

}  // namespace cloudmerge
