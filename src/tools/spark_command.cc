// The cluster path of `cloudmerge merge` (see spark_command.h).
// spark: fork/exec spark-submit and wait. emr / emr-serverless: upload the job
// script to --spark-artifacts with our S3 client, submit over the AWS JSON
// APIs (SigV4, bounded retries on throttling/5xx/transport errors), poll until
// a terminal state.
#include "tools/spark_command.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/aws/sigv4.h"

extern char** environ;

namespace cloudmerge_cli {
namespace {

using cloudmerge::Result;
using cloudmerge::Status;
using nlohmann::json;
namespace fs = std::filesystem;

int Fail(const Status& st) {
  fmt::print(stderr, "Error [cloudmerge merge]: {}\n", st.message());
  return st.ExitCode();
}

fs::path BinaryDir() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

// The job script: $CLOUDMERGE_SPARK_JOB, else spark/merge_job.py beside or above the binary.
Result<std::string> FindJobScript() {
  if (const char* env = std::getenv("CLOUDMERGE_SPARK_JOB"); env && *env) {
    if (fs::exists(env)) return std::string(env);
    return Status::InvalidArgument(fmt::format("CLOUDMERGE_SPARK_JOB={} does not exist. Point it at "
                                               "spark/merge_job.py of the cloudmerge sources.", env));
  }
  for (const fs::path& p : {BinaryDir() / "spark" / "merge_job.py", BinaryDir().parent_path() / "spark" / "merge_job.py"})
    if (fs::exists(p)) return p.string();
  return Status::InvalidArgument(fmt::format("spark/merge_job.py was not found beside or above {}. Set "
                                             "CLOUDMERGE_SPARK_JOB to its path.", BinaryDir().string()));
}

// $CLOUDMERGE_SPARK_SUBMIT, else the project's .venv (pyspark from PyPI), else PATH.
std::string FindSparkSubmit() {
  if (const char* env = std::getenv("CLOUDMERGE_SPARK_SUBMIT"); env && *env) return env;
  for (const fs::path& p : {BinaryDir().parent_path() / ".venv" / "bin" / "spark-submit",
                            BinaryDir() / ".venv" / "bin" / "spark-submit"})
    if (fs::exists(p)) return p.string();
  return "spark-submit";
}

// The job's own arguments (after the script).
std::vector<std::string> JobArgs(const SparkFlags& f, const cloudmerge::MergeOptions& o) {
  std::vector<std::string> a = {o.x_path, o.y_path, "-o", o.out_path, "--x-key", o.x_key, "--y-key", o.y_key};
  if (!o.any_order) a.push_back("--ordered");
  if (!f.parts) a.push_back("--single-file");
  if (o.allow_numeric_header) a.push_back("--allow-numeric-header");
  return a;
}

std::vector<std::string> ConfArgs(const SparkFlags& f) {
  std::vector<std::string> a = {"--conf", "spark.sql.adaptive.enabled=true", "--conf",
                                "spark.sql.adaptive.skewJoin.enabled=true"};
  for (const auto& c : f.conf) {
    a.push_back("--conf");
    a.push_back(c);
  }
  return a;
}

int RunLocalSpark(const SparkFlags& f, const cloudmerge::MergeOptions& o) {
  if (o.out_path == "-")
    return Fail(Status::InvalidArgument("--engine spark writes files: give -o OUT (a file, or a directory of part "
                                        "files with --spark-parts)."));
  auto job = FindJobScript();
  if (!job.ok()) return Fail(job.status());
  std::string submit = FindSparkSubmit();
  std::vector<std::string> args = {submit, "--master", f.master};
  for (auto& c : ConfArgs(f)) args.push_back(c);
  args.push_back(*job);
  for (auto& a : JobArgs(f, o)) args.push_back(a);
  // The driver and workers use the Python beside spark-submit (the venv that has pyspark).
  fs::path py = fs::path(submit).parent_path() / "python";
  if (!std::getenv("PYSPARK_PYTHON") && submit.find('/') != std::string::npos && fs::exists(py))
    setenv("PYSPARK_PYTHON", py.c_str(), 0);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // PythonRunner merges the driver's stderr into its stdout: send it all to our
  // stderr, where cloudmerge's messages go (stdout stays free for data).
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0)
    return Fail(Status::InvalidArgument(fmt::format(
        "cannot start {}: {}. Install pyspark (scripts/install-deps.sh puts it in .venv) or set "
        "CLOUDMERGE_SPARK_SUBMIT to a spark-submit.", submit, std::strerror(rc))));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    int code = WEXITSTATUS(status);
    if (code == 0) return 0;
    if (code == 2 || code == 3 || code == 4) return code;  // the job printed "Error [cloudmerge spark]: ..."
    return Fail(Status::IOError(fmt::format(
        "spark-submit ({} --master {}) failed with exit code {}; its log is above. Check that Java 17 is "
        "installed (java -version) and the master is reachable.", submit, f.master, code)));
  }
  return Fail(Status::IOError(fmt::format("spark-submit was killed by signal {}.", WTERMSIG(status))));
}

// ---- AWS JSON calls (EMR: JSON 1.1 with X-Amz-Target; EMR Serverless: REST JSON).

struct AwsApi {
  std::string service;   // signing name
  std::string endpoint;  // scheme://host[:port]
  std::string region;
  std::shared_ptr<cloudmerge::CredentialsProvider> credentials;
  std::shared_ptr<cloudmerge::HttpTransport> transport;
};

// A string member of a JSON object, "" when absent or not a string (moto sends nulls).
std::string Str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}

std::string HostOf(const std::string& endpoint) {
  size_t s = endpoint.find("://");
  return s == std::string::npos ? endpoint : endpoint.substr(s + 3);
}

Result<json> Call(const AwsApi& api, const std::string& method, const std::string& path, const std::string& target,
                  const std::string& body, const std::string& what) {
  std::mt19937_64 rng(static_cast<uint64_t>(std::random_device{}()));
  Status last;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (attempt > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % (std::min(100 << attempt, 5000) + 1)));
    auto creds = api.credentials->Get();
    if (!creds.ok()) return creds.status();
    cloudmerge::SigningInput in;
    in.method = method;
    in.host = HostOf(api.endpoint);
    in.canonical_uri = path;
    in.headers = {{"content-type", target.empty() ? "application/json" : "application/x-amz-json-1.1"}};
    if (!target.empty()) in.headers.push_back({"x-amz-target", target});
    in.payload_sha256 = cloudmerge::Sha256Hex(body);
    in.region = api.region;
    in.service = api.service;
    in.now = std::time(nullptr);
    cloudmerge::HttpRequest req;
    req.method = method;
    req.url = api.endpoint + path;
    req.headers = in.headers;
    for (auto& h : cloudmerge::SignRequest(in, *creds)) req.headers.push_back(h);
    req.body = body;
    req.timeout_ms = 60000;
    auto resp = api.transport->Send(req);
    if (!resp.ok()) {
      last = resp.status();
      continue;
    }
    json j = json::parse(resp->body.empty() ? "{}" : resp->body, nullptr, false);
    if (resp->status / 100 == 2) return j;
    std::string type = Str(j, "__type").empty() ? resp->Header("x-amzn-errortype") : Str(j, "__type");
    std::string message = !Str(j, "message").empty() ? Str(j, "message")
                          : !Str(j, "Message").empty() ? Str(j, "Message") : resp->body.substr(0, 300);
    last = Status::IOError(fmt::format("{} at {} failed: {} ({} {}). Check the IDs, the region ({}) and that {} "
                                       "is allowed to call it.", what, api.endpoint, message, resp->status, type,
                                       api.region, creds->Describe()));
    if (resp->status < 500 && resp->status != 429 && type.find("Throttl") == std::string::npos) return last;
  }
  return last;
}

std::string EndpointFor(const SparkFlags& f, const char* env_name, const std::string& default_host) {
  if (!f.aws_endpoint.empty()) return f.aws_endpoint;
  for (const char* e : {env_name, "AWS_ENDPOINT_URL"})
    if (const char* v = std::getenv(e); v && *v) return v;
  return "https://" + default_host;
}

AwsApi MakeApi(const SparkFlags& f, const std::string& service, const char* env_name, const std::string& host_prefix) {
  auto env = cloudmerge::AwsEnvironment::FromProcess();
  AwsApi api;
  api.service = service;
  api.region = f.region.empty() ? cloudmerge::ResolveRegion(env) : f.region;
  api.endpoint = EndpointFor(f, env_name, host_prefix + "." + api.region + ".amazonaws.com");
  while (!api.endpoint.empty() && api.endpoint.back() == '/') api.endpoint.pop_back();
  api.transport = cloudmerge::NewCurlTransport();
  api.credentials = cloudmerge::NewDefaultCredentialsChain(env, api.transport);
  return api;
}

// Uploads merge_job.py under --spark-artifacts; returns its s3:// URI.
Result<std::string> UploadJob(const SparkFlags& f, const S3Flags& s3) {
  if (f.artifacts.rfind("s3://", 0) != 0)
    return Status::InvalidArgument("give --spark-artifacts s3://bucket/prefix/: the cluster reads the job script "
                                   "from there.");
  auto job = FindJobScript();
  if (!job.ok()) return job.status();
  std::ifstream in(*job, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  std::string prefix = f.artifacts;
  if (prefix.back() != '/') prefix.push_back('/');
  auto uri = cloudmerge::S3Uri::Parse(prefix + "merge_job.py");
  if (!uri.ok()) return uri.status();
  auto client = MakeS3Client(s3);
  if (!client.ok()) return client.status();
  auto put = (*client)->PutObject(*uri, text.str(), "text/x-python");
  if (!put.ok()) return put.status();
  return uri->ToString();
}

// Polls `get` (returns state and detail) every poll_seconds until a terminal state.
int Poll(const SparkFlags& f, const std::string& what, const std::vector<std::string>& ok_states,
         const std::vector<std::string>& failed_states,
         const std::function<Result<std::pair<std::string, std::string>>()>& get) {
  auto start = std::chrono::steady_clock::now();
  std::string last_state;
  for (;;) {
    auto s = get();
    if (!s.ok()) return Fail(s.status());
    auto [state, detail] = *s;
    if (state != last_state) fmt::print(stderr, "cloudmerge: {} is {}\n", what, state);
    last_state = state;
    for (auto& ok : ok_states)
      if (state == ok) return 0;
    for (auto& bad : failed_states)
      if (state == bad)
        return Fail(Status::IOError(fmt::format("{} ended {}{}. Its driver log (stderr) says why; run the same "
                                                "merge with --engine spark on a sample to reproduce locally.",
                                                what, state, detail.empty() ? "" : ": " + detail)));
    double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60;
    if (f.timeout_minutes > 0 && minutes >= f.timeout_minutes)
      return Fail(Status::IOError(fmt::format("{} is still {} after {:.1f} minutes (--timeout-minutes); it keeps "
                                              "running: cancel it in the console or wait longer.", what, state,
                                              minutes)));
    std::this_thread::sleep_for(std::chrono::duration<double>(f.poll_seconds));
  }
}

int RunEmrServerless(const SparkFlags& f, const cloudmerge::MergeOptions& o, const S3Flags& s3) {
  if (f.application_id.empty() || f.execution_role_arn.empty())
    return Fail(Status::InvalidArgument("--engine emr-serverless needs --application-id and --execution-role-arn."));
  auto script = UploadJob(f, s3);
  if (!script.ok()) return Fail(script.status());
  AwsApi api = MakeApi(f, "emr-serverless", "AWS_ENDPOINT_URL_EMR_SERVERLESS", "emr-serverless");
  std::string params;
  for (auto& c : ConfArgs(f)) params += (params.empty() ? "" : " ") + c;
  json body = {{"clientToken", fmt::format("cloudmerge-{}-{}", std::time(nullptr), getpid())},
               {"executionRoleArn", f.execution_role_arn},
               {"name", "cloudmerge merge"},
               {"jobDriver", {{"sparkSubmit", {{"entryPoint", *script},
                                               {"entryPointArguments", JobArgs(f, o)},
                                               {"sparkSubmitParameters", params}}}}}};
  std::string app_path = "/applications/" + cloudmerge::UriEncode(f.application_id, true);
  auto started = Call(api, "POST", app_path + "/jobruns", "", body.dump(), "EMR Serverless StartJobRun");
  if (!started.ok()) return Fail(started.status());
  std::string run_id = Str(*started, "jobRunId");
  fmt::print(stderr, "cloudmerge: EMR Serverless job run {} started on application {}\n", run_id, f.application_id);
  return Poll(f, "EMR Serverless job run " + run_id, {"SUCCESS"}, {"FAILED", "CANCELLED"},
              [&]() -> Result<std::pair<std::string, std::string>> {
                auto r = Call(api, "GET", app_path + "/jobruns/" + cloudmerge::UriEncode(run_id, true), "", "",
                              "EMR Serverless GetJobRun");
                if (!r.ok()) return r.status();
                json run = r->contains("jobRun") ? (*r)["jobRun"] : json::object();
                return std::make_pair(Str(run, "state"), Str(run, "stateDetails"));
              });
}

int RunEmrStep(const SparkFlags& f, const cloudmerge::MergeOptions& o, const S3Flags& s3) {
  if (f.cluster_id.empty()) return Fail(Status::InvalidArgument("--engine emr needs --cluster-id j-XXXXXXXX."));
  auto script = UploadJob(f, s3);
  if (!script.ok()) return Fail(script.status());
  AwsApi api = MakeApi(f, "elasticmapreduce", "AWS_ENDPOINT_URL_EMR", "elasticmapreduce");
  std::vector<std::string> args = {"spark-submit", "--deploy-mode", "cluster"};
  for (auto& c : ConfArgs(f)) args.push_back(c);
  args.push_back(*script);
  for (auto& a : JobArgs(f, o)) args.push_back(a);
  json body = {{"JobFlowId", f.cluster_id},
               {"Steps", {{{"Name", "cloudmerge merge"},
                           {"ActionOnFailure", "CONTINUE"},
                           {"HadoopJarStep", {{"Jar", "command-runner.jar"}, {"Args", args}}}}}}};
  auto added = Call(api, "POST", "/", "ElasticMapReduce.AddJobFlowSteps", body.dump(), "EMR AddJobFlowSteps");
  if (!added.ok()) return Fail(added.status());
  std::string step_id;
  if (added->contains("StepIds") && (*added)["StepIds"].is_array() && !(*added)["StepIds"].empty())
    step_id = (*added)["StepIds"][0].get<std::string>();
  fmt::print(stderr, "cloudmerge: EMR step {} added to cluster {}\n", step_id, f.cluster_id);
  return Poll(f, "EMR step " + step_id, {"COMPLETED"}, {"FAILED", "CANCELLED", "INTERRUPTED"},
              [&]() -> Result<std::pair<std::string, std::string>> {
                auto r = Call(api, "POST", "/", "ElasticMapReduce.DescribeStep",
                              json{{"ClusterId", f.cluster_id}, {"StepId", step_id}}.dump(), "EMR DescribeStep");
                if (!r.ok()) return r.status();
                json step = r->contains("Step") ? (*r)["Step"] : json::object();
                json status = step.is_object() && step.contains("Status") ? step["Status"] : json::object();
                json fail = status.is_object() && status.contains("FailureDetails") ? status["FailureDetails"]
                                                                                    : json::object();
                std::string detail = Str(fail, "Message").empty() ? Str(fail, "Reason") : Str(fail, "Message");
                return std::make_pair(Str(status, "State"), detail);
              });
}

}  // namespace

void AddSparkOptions(CLI::App* merge, SparkFlags* f) {
  const char* group = "Cluster engines (--engine spark|emr|emr-serverless; see docs/spark.md)";
  merge->add_option("--engine", f->engine,
                    "native (default): this process; spark: spark-submit spark/merge_job.py locally or to "
                    "--master; emr: a step on --cluster-id; emr-serverless: a job run on --application-id")
      ->check(CLI::IsMember({"native", "spark", "emr", "emr-serverless"}))
      ->group(group);
  merge->add_option("--master", f->master, "Spark master for --engine spark (default: local[*])")->group(group);
  merge->add_option("--spark-conf", f->conf, "Extra spark-submit --conf key=value (repeatable)")->group(group);
  merge->add_flag("--spark-parts", f->parts, "Write OUT as a directory of part files (+ _SUCCESS), not one file")
      ->group(group);
  merge->add_option("--application-id", f->application_id, "EMR Serverless application ID")->group(group);
  merge->add_option("--execution-role-arn", f->execution_role_arn, "EMR Serverless job runtime role ARN")
      ->group(group);
  merge->add_option("--cluster-id", f->cluster_id, "EMR cluster ID (j-...)")->group(group);
  merge->add_option("--spark-artifacts", f->artifacts, "s3://bucket/prefix/ where the job script is uploaded")
      ->group(group);
  merge->add_option("--region", f->region, "AWS region for EMR calls (default: as the AWS CLI finds it)")
      ->group(group);
  merge->add_option("--aws-endpoint-url", f->aws_endpoint,
                    "EMR / EMR Serverless endpoint (default: AWS_ENDPOINT_URL_EMR[_SERVERLESS], AWS_ENDPOINT_URL, "
                    "else AWS)")
      ->group(group);
  merge->add_option("--poll-seconds", f->poll_seconds, "Seconds between status polls (default: 10)")
      ->check(CLI::Range(0.05, 3600.0))
      ->group(group);
  merge->add_option("--timeout-minutes", f->timeout_minutes, "Stop waiting after this long (default: no limit)")
      ->group(group);
}

int RunSparkMerge(const SparkFlags& f, const cloudmerge::MergeOptions& o, const S3Flags& s3) {
  if (f.engine == "spark") return RunLocalSpark(f, o);
  if (f.engine == "emr-serverless") return RunEmrServerless(f, o, s3);
  if (f.engine == "emr") return RunEmrStep(f, o, s3);
  return Fail(Status::InvalidArgument("unknown --engine " + f.engine));
}

}  // namespace cloudmerge_cli
