// The AWS credentials provider chain and region lookup: environment variables,
// the shared ~/.aws files, the container credentials endpoint (ECS, Lambda,
// EKS Pod Identity) and EC2 instance metadata (IMDSv2), in that order, with
// temporary credentials cached and refreshed before they expire.
//
// Not supported (said so in the error when a profile relies on them):
// role_arn/source_profile (AssumeRole), web identity, SSO and credential_process.
// Users of those can export plain keys with `aws configure export-credentials`.
//
// Secrets (secret key, session token) are never put in a Status message: the
// messages name sources and variables, never values.
#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/endpoints.h"
#include "cloudmerge/aws/shared_config.h"
#include "cloudmerge/base/ascii.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace cloudmerge {
namespace {

std::string HostOf(std::string_view url) { return ParseEndpointUrl(url).host; }
bool StartsWith(std::string_view s, std::string_view prefix) { return s.starts_with(prefix); }

using Section = AwsIniSection;
using Ini = AwsIni;

// Refresh this long before expiry, so a request signed just before never
// reaches S3 with credentials that lapsed in flight.
constexpr std::time_t kRefreshMarginSeconds = 5 * 60;
constexpr std::time_t kRetryAfterFailedRefreshSeconds = 30;
// The metadata endpoints are link-local and answer in milliseconds when they
// exist; off AWS the connection hangs, so wait briefly.
constexpr long kMetadataTimeoutMs = 1000;
constexpr std::string_view kContainerHost = "http://169.254.170.2";
constexpr std::string_view kImdsDefaultEndpoint = "http://169.254.169.254";
constexpr std::string_view kImdsTokenTtlSeconds = "21600";

constexpr std::string_view kHowToProvide =
    "To provide credentials, export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for "
    "temporary keys), or run `aws configure` to write ~/.aws/credentials (pick a profile with AWS_PROFILE), or run "
    "on AWS with an IAM role (ECS task role, Lambda execution role, EC2 instance profile).";

// ---- one link of the chain ----

// What a source yielded: credentials, a note on why it had none (collected
// for the final error), or an error that ends the search (a source the user
// configured but that is broken, e.g. half the keys set).
struct Outcome {
  std::optional<AwsCredentials> creds;
  std::string tried;
  Status error;

  static Outcome Got(AwsCredentials c) {
    Outcome o;
    o.creds = std::move(c);
    return o;
  }
  static Outcome Skip(std::string why) {
    Outcome o;
    o.tried = std::move(why);
    return o;
  }
  static Outcome Fail(Status st) {
    Outcome o;
    o.error = std::move(st);
    return o;
  }
};

Outcome FromEnvironment(const AwsEnvironment& env) {
  std::string id = env.getenv("AWS_ACCESS_KEY_ID");
  std::string secret = env.getenv("AWS_SECRET_ACCESS_KEY");
  if (id.empty() && secret.empty()) {
    return Outcome::Skip("environment variables (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set)");
  }
  if (id.empty() || secret.empty()) {
    const char* set = id.empty() ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID";
    const char* unset = id.empty() ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY";
    return Outcome::Fail(Status::InvalidArgument(
        fmt::format("AWS credentials: {} is set but {} is not. Set both, or unset {} to use another credentials "
                    "source (~/.aws/credentials, an IAM role).",
                    set, unset, set)));
  }
  AwsCredentials c;
  c.access_key_id = std::move(id);
  c.secret_access_key = std::move(secret);
  c.session_token = env.getenv("AWS_SESSION_TOKEN");
  c.source = "environment variables";
  return Outcome::Got(std::move(c));
}

// Keys that mean "credentials come from somewhere we do not implement".
std::string UnsupportedMechanism(const Section& section) {
  for (const char* key : {"role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file"}) {
    if (section.count(key)) return key;
  }
  return "";
}

Outcome FromProfileSection(const Section& section, const std::string& profile, const std::string& path) {
  std::string id = SectionValue(section, "aws_access_key_id");
  std::string secret = SectionValue(section, "aws_secret_access_key");
  if (id.empty() && secret.empty()) {
    std::string mechanism = UnsupportedMechanism(section);
    if (mechanism.empty()) return Outcome::Skip(fmt::format("{} (profile '{}' has no aws_access_key_id)", path, profile));
    return Outcome::Skip(fmt::format(
        "{} (profile '{}' uses {}, which cloudmerge does not support; export its keys with `aws configure "
        "export-credentials --profile {} --format env`)",
        path, profile, mechanism, profile));
  }
  if (id.empty() || secret.empty()) {
    return Outcome::Fail(Status::InvalidArgument(fmt::format(
        "AWS credentials: profile '{}' in {} has {} but no {}. Add the missing key to the profile, or choose another "
        "profile with AWS_PROFILE.",
        profile, path, id.empty() ? "aws_secret_access_key" : "aws_access_key_id",
        id.empty() ? "aws_access_key_id" : "aws_secret_access_key")));
  }
  AwsCredentials c;
  c.access_key_id = std::move(id);
  c.secret_access_key = std::move(secret);
  c.session_token = SectionValue(section, "aws_session_token");
  if (c.session_token.empty()) c.session_token = SectionValue(section, "aws_security_token");  // older boto name
  c.source = fmt::format("profile '{}' in {}", profile, path);
  return Outcome::Got(std::move(c));
}

// The credentials file first, then keys in the config file's profile (the AWS
// CLI's order).
Outcome FromSharedFiles(const AwsEnvironment& env) {
  std::string profile = ProfileName(env);
  std::string cred_path = CredentialsPath(env);
  std::string conf_path = ConfigPath(env);
  AwsFileText cred_file = ReadAwsFile(cred_path);
  AwsFileText conf_file = ReadAwsFile(conf_path);
  Ini cred = cred_file.ok ? ParseAwsIni(cred_file.text) : Ini();
  Ini conf = conf_file.ok ? ParseAwsIni(conf_file.text) : Ini();
  const Section* in_cred = CredentialsProfile(cred, profile);
  const Section* in_conf = ConfigProfile(conf, profile);

  struct Candidate {
    const Section* section;
    const std::string& path;
    const AwsFileText& file;
  };
  std::vector<std::string> notes;
  for (const Candidate& c : {Candidate{in_cred, cred_path, cred_file}, Candidate{in_conf, conf_path, conf_file}}) {
    if (!c.section) {
      notes.push_back(fmt::format("{} ({})", c.path, c.file.ok ? "no such profile" : c.file.why));
      continue;
    }
    Outcome o = FromProfileSection(*c.section, profile, c.path);
    if (o.creds || !o.error.ok()) return o;
    notes.push_back(o.tried);
  }
  std::string var = ProfileVariable(env);
  if (!in_cred && !in_conf && !var.empty()) {
    return Outcome::Fail(Status::InvalidArgument(fmt::format(
        "AWS credentials: profile '{}' (from {}) is in neither {} nor {}. Add a [{}] section to the first or a "
        "[profile {}] section to the second, or unset {}.",
        profile, var, cred_path, conf_path, profile, profile, var)));
  }
  return Outcome::Skip(fmt::format("shared files for profile '{}': {}; {}", profile, notes[0], notes[1]));
}

// ---- HTTP-served credentials (container endpoint, IMDS) ----

// ISO 8601 UTC as the endpoints write it: 2024-01-01T12:00:00Z, optionally
// with fractional seconds or a numeric offset.
std::optional<std::time_t> ParseIso8601(const std::string& s) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                  &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  std::string_view rest = std::string_view(s).substr(static_cast<size_t>(consumed));
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front()))) rest.remove_prefix(1);
  }
  long offset = 0;
  if (rest == "Z" || rest == "z" || rest.empty()) {
  } else if ((rest.front() == '+' || rest.front() == '-') && rest.size() == 6 && rest[3] == ':') {
    int hh = 0, mm = 0;
    if (std::sscanf(std::string(rest.substr(1)).c_str(), "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    offset = (rest.front() == '+' ? 1 : -1) * (hh * 3600L + mm * 60L);
  } else {
    return std::nullopt;
  }
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31) return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return timegm(&tm) - offset;
}

// The JSON both endpoints return. `source` names the endpoint in messages;
// a 2xx body is never quoted since it may hold the secret.
Result<AwsCredentials> ParseCredentialsJson(const std::string& body, const std::string& source) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::IOError(fmt::format("AWS credentials: {} answered with something that is not a JSON object.", source));
  }
  AwsCredentials c;
  std::string expiration;
  try {
    std::string code = j.value("Code", "Success");
    if (code != "Success") {
      return Status::IOError(fmt::format("AWS credentials: {} answered Code \"{}\" instead of Success.", source, code));
    }
    c.access_key_id = j.value("AccessKeyId", "");
    c.secret_access_key = j.value("SecretAccessKey", "");
    c.session_token = j.value("Token", "");
    expiration = j.value("Expiration", "");
  } catch (const nlohmann::json::exception&) {
    return Status::IOError(fmt::format("AWS credentials: {} answered with credential fields that are not strings.", source));
  }
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return Status::IOError(fmt::format("AWS credentials: {} answered without AccessKeyId or SecretAccessKey.", source));
  }
  if (!expiration.empty()) {
    auto t = ParseIso8601(expiration);
    if (!t) {
      return Status::IOError(
          fmt::format("AWS credentials: {} answered Expiration \"{}\", which is not an ISO 8601 time.", source, expiration));
    }
    c.expiration = *t;
  }
  c.source = source;
  return c;
}

// A full URI may only point somewhere that cannot be a stranger listening for
// our authorization token: https, loopback, or the ECS/EKS link-local agents.
bool ContainerUriAllowed(const std::string& uri) {
  if (StartsWith(AsciiLower(uri), "https://")) return true;
  if (!StartsWith(AsciiLower(uri), "http://")) return false;
  std::string host = AsciiLower(HostOf(uri));
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
    return host == "[::1]" || host == "[fd00:ec2::23]";
  }
  host = host.substr(0, host.find(':'));
  return host == "localhost" || StartsWith(host, "127.") || host == "169.254.170.2" || host == "169.254.170.23";
}

// The token file wins over the variable: EKS rotates the file under us, so it
// is read at every fetch.
Result<std::string> ContainerAuthorization(const AwsEnvironment& env) {
  std::string file = env.getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  if (file.empty()) return env.getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  AwsFileText t = ReadAwsFile(file);
  if (!t.ok) {
    return Status::IOError(fmt::format(
        "AWS credentials: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {}: {}. Check the file is mounted and "
        "readable.",
        file, t.why));
  }
  return TrimBlanks(t.text);
}

Outcome FromContainer(const AwsEnvironment& env, HttpTransport* transport) {
  std::string relative = env.getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  std::string full = env.getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  if (relative.empty() && full.empty()) {
    return Outcome::Skip(
        "container credentials endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
        "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set)");
  }
  std::string url = relative.empty() ? full : std::string(kContainerHost) + (StartsWith(relative, "/") ? "" : "/") + relative;
  if (relative.empty() && !ContainerUriAllowed(full)) {
    return Outcome::Fail(Status::InvalidArgument(fmt::format(
        "AWS credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI points to {}, which is neither https nor a loopback or "
        "ECS/EKS agent address; cloudmerge will not send the authorization token there. Fix or unset the variable.",
        HostOf(full))));
  }
  std::string source = fmt::format("container credentials endpoint at {}", HostOf(url));
  if (!transport) return Outcome::Skip(source + " (no HTTP transport)");
  Result<std::string> token = ContainerAuthorization(env);
  if (!token.ok()) return Outcome::Fail(token.status());

  HttpRequest req;
  req.url = url;
  if (!token.value().empty()) req.headers.emplace_back("Authorization", token.value());
  req.timeout_ms = kMetadataTimeoutMs;
  Result<HttpResponse> resp = transport->Send(req);
  if (!resp.ok()) {
    return Outcome::Fail(Status::IOError(fmt::format(
        "AWS credentials: cannot reach the {}: {}. The AWS_CONTAINER_CREDENTIALS_* variables say it should be there; "
        "check the task's network, or unset them.",
        source, resp.status().message())));
  }
  if (resp->status != 200) {
    return Outcome::Fail(Status::IOError(fmt::format(
        "AWS credentials: the {} answered HTTP {}. Check the task role (or pod identity association) and the "
        "authorization token.",
        source, resp->status)));
  }
  Result<AwsCredentials> creds = ParseCredentialsJson(resp->body, source);
  if (!creds.ok()) return Outcome::Fail(creds.status());
  return Outcome::Got(std::move(creds.value()));
}

Result<HttpResponse> ImdsCall(HttpTransport* transport, std::string method, std::string url, HttpHeaders headers) {
  HttpRequest req;
  req.method = std::move(method);
  req.url = std::move(url);
  req.headers = std::move(headers);
  req.timeout_ms = kMetadataTimeoutMs;
  return transport->Send(req);
}

// IMDSv2 only: the v1 fallback (GET without a session token) is left out on
// purpose, as instances increasingly require v2 and v1 eases SSRF attacks.
Outcome FromInstanceMetadata(const AwsEnvironment& env, HttpTransport* transport) {
  if (AsciiLower(TrimBlanks(env.getenv("AWS_EC2_METADATA_DISABLED"))) == "true") {
    return Outcome::Skip("EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)");
  }
  std::string base = env.getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (base.empty()) base = kImdsDefaultEndpoint;
  while (!base.empty() && base.back() == '/') base.pop_back();
  std::string what = fmt::format("EC2 instance metadata at {}", base);
  if (!transport) return Outcome::Skip(what + " (no HTTP transport)");

  auto token = ImdsCall(transport, "PUT", base + "/latest/api/token",
                        {{"X-aws-ec2-metadata-token-ttl-seconds", std::string(kImdsTokenTtlSeconds)}});
  if (!token.ok()) return Outcome::Skip(fmt::format("{} (not reachable: {})", what, token.status().message()));
  if (token->status != 200) return Outcome::Skip(fmt::format("{} (token request answered HTTP {})", what, token->status));
  HttpHeaders auth = {{"X-aws-ec2-metadata-token", TrimBlanks(token->body)}};

  std::string roles_url = base + "/latest/meta-data/iam/security-credentials/";
  auto roles = ImdsCall(transport, "GET", roles_url, auth);
  if (!roles.ok()) return Outcome::Skip(fmt::format("{} (not reachable: {})", what, roles.status().message()));
  if (roles->status == 404) return Outcome::Skip(what + " (no IAM role is attached to this instance)");
  if (roles->status != 200) return Outcome::Skip(fmt::format("{} (role list answered HTTP {})", what, roles->status));
  std::string role = TrimBlanks(std::string_view(roles->body).substr(0, roles->body.find('\n')));
  if (role.empty()) return Outcome::Skip(what + " (no IAM role is attached to this instance)");

  std::string source = fmt::format("EC2 instance metadata (role {})", role);
  auto creds_resp = ImdsCall(transport, "GET", roles_url + role, auth);
  if (!creds_resp.ok()) {
    return Outcome::Fail(Status::IOError(
        fmt::format("AWS credentials: cannot get the credentials of {}: {}.", source, creds_resp.status().message())));
  }
  if (creds_resp->status != 200) {
    return Outcome::Fail(Status::IOError(
        fmt::format("AWS credentials: {} answered HTTP {} for the role's credentials.", source, creds_resp->status)));
  }
  Result<AwsCredentials> creds = ParseCredentialsJson(creds_resp->body, source);
  if (!creds.ok()) return Outcome::Fail(creds.status());
  return Outcome::Got(std::move(creds.value()));
}

// ---- the chain ----

bool Fresh(const AwsCredentials& c, std::time_t now) {
  return c.expiration == 0 || now < c.expiration - kRefreshMarginSeconds;
}

bool StillValid(const AwsCredentials& c, std::time_t now) { return c.expiration == 0 || now < c.expiration; }

// Caches what it found. Long-term keys are kept for the life of the process;
// temporary ones are fetched again (from the top of the chain) once within
// the refresh margin. The mutex is held across the fetch so that threads
// arriving together cause one request to the endpoint, not one each.
class DefaultChain final : public CredentialsProvider {
 public:
  DefaultChain(AwsEnvironment env, std::shared_ptr<HttpTransport> transport)
      : env_(std::move(env)), transport_(std::move(transport)) {}

  Result<AwsCredentials> Get() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::time_t now = std::time(nullptr);
    if (cached_ && Fresh(*cached_, now)) return *cached_;
    bool usable = cached_ && StillValid(*cached_, now);
    if (usable && now < retry_after_) return *cached_;
    Result<AwsCredentials> found = Resolve();
    if (found.ok()) {
      cached_ = found.value();
      return found;
    }
    // A failed refresh is not fatal while the old credentials still work; wait
    // a little before the next try so that every request does not stall on a
    // struggling endpoint.
    if (usable) {
      retry_after_ = now + kRetryAfterFailedRefreshSeconds;
      return *cached_;
    }
    return found;
  }

 private:
  Result<AwsCredentials> Resolve() {
    HttpTransport* t = transport_.get();
    const std::function<Outcome()> steps[] = {
        [&] { return FromEnvironment(env_); },
        [&] { return FromSharedFiles(env_); },
        [&] { return FromContainer(env_, t); },
        [&] { return FromInstanceMetadata(env_, t); },
    };
    std::vector<std::string> tried;
    for (const auto& step : steps) {
      Outcome o = step();
      if (!o.error.ok()) return o.error;
      if (o.creds) return std::move(*o.creds);
      tried.push_back(fmt::format("{}) {}", tried.size() + 1, o.tried));
    }
    return Status::InvalidArgument(
        fmt::format("No AWS credentials found. Tried, in order: {}. {}", fmt::join(tried, "; "), kHowToProvide));
  }

  const AwsEnvironment env_;
  const std::shared_ptr<HttpTransport> transport_;
  std::mutex mu_;
  std::optional<AwsCredentials> cached_;
  std::time_t retry_after_ = 0;
};

class StaticCredentials final : public CredentialsProvider {
 public:
  explicit StaticCredentials(AwsCredentials creds) : creds_(std::move(creds)) {
    if (creds_.source.empty()) creds_.source = "explicitly given credentials";
  }
  Result<AwsCredentials> Get() override { return creds_; }

 private:
  AwsCredentials creds_;
};

}  // namespace

std::string AwsCredentials::Describe() const {
  std::string tail = access_key_id.size() > 4 ? access_key_id.substr(access_key_id.size() - 4) : access_key_id;
  return fmt::format("access key ...{} from {}", tail, source.empty() ? "an unnamed source" : source);
}

std::shared_ptr<CredentialsProvider> NewDefaultCredentialsChain(const AwsEnvironment& env,
                                                                std::shared_ptr<HttpTransport> transport) {
  return std::make_shared<DefaultChain>(env, std::move(transport));
}

std::shared_ptr<CredentialsProvider> NewStaticCredentials(AwsCredentials creds) {
  return std::make_shared<StaticCredentials>(std::move(creds));
}

}  // namespace cloudmerge
