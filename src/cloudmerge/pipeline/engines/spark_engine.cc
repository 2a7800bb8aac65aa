// The cluster engines (see spark_engine.h).
// spark: posix_spawn spark-submit, its output read through a pipe (copied to
// our stderr and its tail kept for the error message). emr / emr-serverless:
// upload the job script with our S3 client, submit through aws/emr_client.h
// (endpoints, SigV4 and the retry policy are the AWS layer's), poll until a
// terminal state, the timeout or the caller's deadline.
#include "cloudmerge/pipeline/engines/spark_engine.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "cloudmerge/aws/emr_client.h"
#include "cloudmerge/pipeline/json_log.h"

extern char** environ;

namespace cloudmerge {
namespace {

namespace fs = std::filesystem;

fs::path BinaryDir() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

// The binary the job's tasks run (`cloudmerge cluster-task`): $CLOUDMERGE_CLUSTER_BINARY (e.g.
// the static build of scripts/package-lambda.sh, which runs on EMR's Amazon Linux), else this one.
std::string ClusterBinary() {
  if (const char* b = std::getenv("CLOUDMERGE_CLUSTER_BINARY"); b && *b) return b;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "cloudmerge" : self.string();
}

// $CLOUDMERGE_SPARK_SUBMIT, else the project's .venv (pyspark from PyPI), else PATH.
std::string FindSparkSubmit() {
  if (const char* env = std::getenv("CLOUDMERGE_SPARK_SUBMIT"); env && *env) return env;
  for (const fs::path& p : {BinaryDir().parent_path() / ".venv" / "bin" / "spark-submit",
                            BinaryDir() / ".venv" / "bin" / "spark-submit"})
    if (fs::exists(p)) return p.string();
  return "spark-submit";
}

bool IsS3Uri(const std::string& p) {
  for (const char* scheme : {"s3://", "s3a://", "s3n://"})
    if (p.rfind(scheme, 0) == 0) return true;
  return false;
}

// The S3A jars, pinned to pyspark 3.5's Hadoop (3.3.4) by scripts/install-deps.sh.
constexpr const char* kS3aJars[] = {"hadoop-aws-3.3.4.jar", "aws-java-sdk-bundle-1.12.262.jar"};

// The spark-submit arguments that put the S3A jars on the classpath when the job
// touches S3 (see spark_engine.h); none when it does not, or when the user's
// --spark-conf takes care of the classpath. A local master runs the executors
// inside the driver's JVM, so the jars go on the driver's classpath and are used
// where they lie; --jars would copy the ~270 MB SDK bundle into every run's work
// directory. Other masters get them on the driver's classpath too (with --jars
// alone the driver's Hadoop, loaded by the system class loader, cannot see them:
// ClassNotFoundException for the SDK's classes, found on a standalone cluster)
// and --jars, which ships them to the executors.
Result<std::vector<std::string>> S3aClasspathArgs(const SparkEngineOptions& o, const SparkJob& j) {
  if (!IsS3Uri(j.x) && !IsS3Uri(j.y) && !IsS3Uri(j.out) && !IsS3Uri(j.stats_uri)) return std::vector<std::string>{};
  for (const auto& c : o.conf)
    for (const char* key : {"spark.jars=", "spark.jars.packages=", "spark.driver.extraClassPath="})
      if (c.rfind(key, 0) == 0) return std::vector<std::string>{};
  std::vector<std::string> jars;
  if (const char* env = std::getenv("CLOUDMERGE_SPARK_JARS"); env && *env) {
    std::stringstream list(env);
    for (std::string jar; std::getline(list, jar, ',');) {
      if (jar.empty()) continue;
      if (!fs::exists(jar))
        return Status::InvalidArgument(fmt::format("CLOUDMERGE_SPARK_JARS names {}, which does not exist. List the "
                                                   "S3A jars (hadoop-aws, aws-java-sdk-bundle) separated by commas.",
                                                   jar));
      jars.push_back(jar);
    }
    if (jars.empty())
      return Status::InvalidArgument(fmt::format("CLOUDMERGE_SPARK_JARS=\"{}\" lists no jar. List the S3A jars "
                                                 "(hadoop-aws, aws-java-sdk-bundle) separated by commas.", env));
  } else {
    for (const fs::path& dir : {BinaryDir() / ".tools" / "jars", BinaryDir().parent_path() / ".tools" / "jars"}) {
      if (!fs::exists(dir / kS3aJars[0]) || !fs::exists(dir / kS3aJars[1])) continue;
      for (const char* jar : kS3aJars) jars.push_back((dir / jar).string());
      break;
    }
    if (jars.empty())
      return Status::InvalidArgument(fmt::format(
          "S3 paths on a local Spark need Hadoop's S3A jars ({} and {}), which were not found in .tools/jars beside "
          "or above {}. Run scripts/install-deps.sh (it fetches them with mvn), or set CLOUDMERGE_SPARK_JARS to "
          "their paths separated by commas.", kS3aJars[0], kS3aJars[1], BinaryDir().string()));
  }
  std::string class_path, shipped;
  for (const auto& jar : jars) {
    class_path += (class_path.empty() ? "" : ":") + jar;
    shipped += (shipped.empty() ? "" : ",") + jar;
  }
  bool local = o.master == "local" || o.master.rfind("local[", 0) == 0;
  if (local) return std::vector<std::string>{"--driver-class-path", class_path};
  return std::vector<std::string>{"--driver-class-path", class_path, "--jars", shipped};
}

// The job's own arguments (after the script). `emr`: S3 URIs as s3://.
std::vector<std::string> JobArgs(const SparkEngineOptions& o, const SparkJob& j, bool emr) {
  auto uri = [&](const std::string& u) { return emr ? ToEmrUri(u) : u; };
  std::vector<std::string> a = {uri(j.x), uri(j.y), "-o", uri(j.out), "--x-key", j.x_key, "--y-key", j.y_key};
  if (j.ordered) a.push_back("--ordered");
  if (!o.parts) a.push_back("--single-file");
  if (j.allow_numeric_header) a.push_back("--allow-numeric-header");
  if (!j.stats_uri.empty()) {
    a.push_back("--stats-file");
    a.push_back(uri(j.stats_uri));
  }
  return a;
}

std::vector<std::string> ConfArgs(const SparkEngineOptions& o) {
  std::vector<std::string> a = {"--conf", "spark.sql.adaptive.enabled=true", "--conf",
                                "spark.sql.adaptive.skewJoin.enabled=true"};
  for (const auto& c : o.conf) {
    a.push_back("--conf");
    a.push_back(c);
  }
  return a;
}

// The job's own message ("Error [cloudmerge spark]: ...") from its output, or "".
std::string JobError(const std::string& log) {
  static const std::string kTag = "Error [cloudmerge spark]: ";
  size_t p = log.rfind(kTag);
  if (p == std::string::npos) return "";
  size_t end = log.find('\n', p);
  return log.substr(p + kTag.size(), end == std::string::npos ? std::string::npos : end - p - kTag.size());
}

Status RunLocalSpark(const SparkEngineOptions& o, const SparkJob& j, SparkOutcome* outcome) {
  if (j.out == "-")
    return Status::InvalidArgument("--engine spark writes files: give -o OUT (a file, or a directory of part "
                                   "files with --spark-parts).");
  auto script = FindSparkJobScript();
  if (!script.ok()) return script.status();
  auto classpath = S3aClasspathArgs(o, j);
  if (!classpath.ok()) return classpath.status();
  std::string submit = FindSparkSubmit();
  std::vector<std::string> args = {submit, "--master", o.master};
  for (auto& c : *classpath) args.push_back(c);
  for (auto& c : ConfArgs(o)) args.push_back(c);
  // Executors elsewhere get the binary as a job file; local ones run it where it is.
  if (o.master.rfind("local", 0) != 0) {
    args.push_back("--files");
    args.push_back(ClusterBinary());
  }
  args.push_back(*script);
  for (auto& a : JobArgs(o, j, false)) args.push_back(a);
  args.push_back("--cloudmerge-bin");
  args.push_back(ClusterBinary());
  if (!o.s3_endpoint.empty()) {
    args.push_back("--s3-endpoint-url");
    args.push_back(o.s3_endpoint);
  }
  // The driver and workers use the Python beside spark-submit (the venv that has pyspark).
  fs::path py = fs::path(submit).parent_path() / "python";
  if (!std::getenv("PYSPARK_PYTHON") && submit.find('/') != std::string::npos && fs::exists(py))
    setenv("PYSPARK_PYTHON", py.c_str(), 0);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The child's stdout and stderr (PythonRunner merges the driver's stderr
  // into its stdout) go to a pipe: copied to our stderr, where cloudmerge's
  // messages go (stdout stays free for data and for serve's JSON log), and
  // the tail kept for the error message.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return Status::IOError(fmt::format("cannot create a pipe for spark-submit: {}", std::strerror(errno)));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return Status::InvalidArgument(fmt::format(
        "cannot start {}: {}. Install pyspark (scripts/install-deps.sh puts it in .venv) or set "
        "CLOUDMERGE_SPARK_SUBMIT to a spark-submit.", submit, std::strerror(rc)));
  }
  std::string tail;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (o.echo_log) (void)!write(STDERR_FILENO, buf, static_cast<size_t>(n));
    tail.append(buf, static_cast<size_t>(n));
    if (tail.size() > (256 << 10)) tail.erase(0, tail.size() - (128 << 10));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    int code = WEXITSTATUS(status);
    outcome->state = code == 0 ? "COMPLETED" : "FAILED";
    outcome->final = true;
    if (code == 0) return Status::OK();
    std::string message = JobError(tail);
    if (!message.empty()) {
      if (code == 3) return Status::InvalidInput(message);
      if (code == 2) return Status::InvalidArgument(message);
      return Status::IOError(message);
    }
    return Status::IOError(fmt::format(
        "spark-submit ({} --master {}) failed with exit code {}; its log is on standard error. Check that Java 17 "
        "is installed (java -version) and the master is reachable.", submit, o.master, code));
  }
  outcome->state = "FAILED";
  outcome->final = true;
  return Status::IOError(fmt::format("spark-submit was killed by signal {}.", WTERMSIG(status)));
}

ClusterApiOptions ApiOptions(const SparkEngineOptions& o) { return {o.region, o.endpoint, o.transport}; }

// Uploads `local` as `name` under the artifacts prefix; returns its s3:// URI.
Result<std::string> UploadArtifact(const SparkEngineOptions& o, const std::string& local, const std::string& name,
                                   const std::string& content_type);

// Uploads merge_job.py and the binary its tasks run (shipped to executors with
// spark-submit --files) under the artifacts prefix; returns the script's s3:// URI
// and sets *binary_uri.
Result<std::string> UploadJob(const SparkEngineOptions& o, std::string* binary_uri) {
  auto script = FindSparkJobScript();
  if (!script.ok()) return script.status();
  auto bin = UploadArtifact(o, ClusterBinary(), "cloudmerge", "application/octet-stream");
  if (!bin.ok()) return bin.status();
  *binary_uri = *bin;
  return UploadArtifact(o, *script, "merge_job.py", "text/x-python");
}

Result<std::string> UploadArtifact(const SparkEngineOptions& o, const std::string& local, const std::string& name,
                                   const std::string& content_type) {
  std::string prefix = ToEmrUri(o.artifacts);
  if (prefix.rfind("s3://", 0) != 0)
    return Status::InvalidArgument("give --spark-artifacts s3://bucket/prefix/ (serve: --spark-artifacts, Lambda: "
                                   "CLOUDMERGE_SPARK_ARTIFACTS): the cluster reads the job script from there.");
  std::ifstream in(local, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in && !in.eof()) return Status::IOError(fmt::format("cannot read {} to upload it as {}", local, name));
  if (prefix.back() != '/') prefix.push_back('/');
  auto uri = S3Uri::Parse(prefix + name);
  if (!uri.ok()) return uri.status();
  if (!o.make_s3_client) return Status::Internal("no S3 client to upload the Spark job script with");
  auto client = o.make_s3_client();
  if (!client.ok()) return client.status();
  auto put = (*client)->PutObject(*uri, text.str(), content_type);
  if (!put.ok()) return put.status();
  return uri->ToString();
}

// Polls `get` every poll_seconds until a terminal state, the timeout, or the
// caller's deadline; records the last state in outcome->state.
Status Poll(const SparkEngineOptions& o, const SparkJob& j, const std::string& what,
            const std::vector<std::string>& ok_states, const std::vector<std::string>& failed_states,
            const std::function<Result<ClusterRunState>()>& get, SparkOutcome* outcome) {
  auto start = std::chrono::steady_clock::now();
  std::string last_state;
  for (;;) {
    auto s = get();
    if (!s.ok()) return s.status();
    outcome->state = s->state;
    if (s->state != last_state) fmt::print(stderr, "cloudmerge: {} is {}\n", what, s->state);
    last_state = s->state;
    for (auto& ok : ok_states)
      if (s->state == ok) {
        outcome->final = true;
        return Status::OK();
      }
    for (auto& bad : failed_states)
      if (s->state == bad) {
        outcome->final = true;
        return Status::IOError(fmt::format("{} ended {}{}. Its driver log (stderr) says why; run the same merge "
                                           "with --engine spark on a sample to reproduce locally.",
                                           what, s->state, s->detail.empty() ? "" : ": " + s->detail));
      }
    double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60;
    if (o.timeout_minutes > 0 && minutes >= o.timeout_minutes) {
      outcome->final = true;
      return Status::IOError(fmt::format("{} is still {} after {:.1f} minutes (--emr-timeout-minutes); it keeps "
                                         "running: cancel it in the console or wait longer.", what, s->state,
                                         minutes));
    }
    if (j.poll_deadline_ms > 0 &&
        NowMillis() + static_cast<int64_t>(o.poll_seconds * 1000) >= j.poll_deadline_ms) {
      outcome->deadline_reached = true;
      return Status::IOError(fmt::format("{} is still {}: stopped waiting for it before this worker's time limit; "
                                         "it keeps running and a later delivery of the event resumes the wait",
                                         what, s->state));
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(o.poll_seconds));
  }
}

Status RunEmrServerless(const SparkEngineOptions& o, const SparkJob& j, SparkOutcome* outcome) {
  if (o.application_id.empty() || o.execution_role_arn.empty())
    return Status::InvalidArgument("the emr-serverless engine needs an application ID and an execution role ARN "
                                   "(merge and serve: --emr-application-id, --emr-execution-role-arn; Lambda: CLOUDMERGE_EMR_APPLICATION_ID, "
                                   "CLOUDMERGE_EMR_EXECUTION_ROLE_ARN).");
  EmrServerlessClient api(ApiOptions(o));
  std::string run_id = j.resume_id;
  if (run_id.empty()) {
    std::string binary;
    auto script = UploadJob(o, &binary);
    if (!script.ok()) return script.status();
    JobRunRequest run;
    run.spark_submit_parameters = "--files " + binary;  // the binary the job's tasks run
    for (auto& c : ConfArgs(o)) run.spark_submit_parameters += " " + c;
    run.client_token = j.client_token.empty() ? fmt::format("cloudmerge-{}-{}", std::time(nullptr), getpid())
                                              : j.client_token;
    run.application_id = o.application_id;
    run.execution_role_arn = o.execution_role_arn;
    run.name = "cloudmerge merge";
    run.entry_point = *script;
    run.arguments = JobArgs(o, j, true);
    auto started = api.StartJobRun(run);
    if (!started.ok()) return started.status();
    run_id = *started;
    fmt::print(stderr, "cloudmerge: EMR Serverless job run {} started on application {}\n", run_id, o.application_id);
    if (j.on_submitted) j.on_submitted(run_id);
  } else {
    fmt::print(stderr, "cloudmerge: resuming the wait for EMR Serverless job run {} on application {}\n", run_id,
               o.application_id);
  }
  outcome->id = run_id;
  return Poll(o, j, "EMR Serverless job run " + run_id, {"SUCCESS"}, {"FAILED", "CANCELLED"},
              [&] { return api.GetJobRun(o.application_id, run_id); }, outcome);
}

Status RunEmrStep(const SparkEngineOptions& o, const SparkJob& j, SparkOutcome* outcome) {
  if (o.cluster_id.empty())
    return Status::InvalidArgument("the emr engine needs a cluster ID j-XXXXXXXX (merge and serve: "
                                   "--emr-cluster-id; Lambda: CLOUDMERGE_EMR_CLUSTER_ID).");
  EmrClient api(ApiOptions(o));
  std::string step_id = j.resume_id;
  if (step_id.empty()) {
    std::string binary;
    auto script = UploadJob(o, &binary);
    if (!script.ok()) return script.status();
    std::vector<std::string> args = {"spark-submit", "--deploy-mode", "cluster", "--files", binary};
    for (auto& c : ConfArgs(o)) args.push_back(c);
    args.push_back(*script);
    for (auto& a : JobArgs(o, j, true)) args.push_back(a);
    auto added = api.AddStep(o.cluster_id, "cloudmerge merge", args);
    if (!added.ok()) return added.status();
    step_id = *added;
    fmt::print(stderr, "cloudmerge: EMR step {} added to cluster {}\n", step_id, o.cluster_id);
    if (j.on_submitted) j.on_submitted(step_id);
  } else {
    fmt::print(stderr, "cloudmerge: resuming the wait for EMR step {} on cluster {}\n", step_id, o.cluster_id);
  }
  outcome->id = step_id;
  return Poll(o, j, "EMR step " + step_id, {"COMPLETED"}, {"FAILED", "CANCELLED", "INTERRUPTED"},
              [&] { return api.DescribeStep(o.cluster_id, step_id); }, outcome);
}

}  // namespace

Result<std::string> FindSparkJobScript() {
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

std::string ToEmrUri(const std::string& uri) {
  for (const char* scheme : {"s3a://", "s3n://"})
    if (uri.rfind(scheme, 0) == 0) return "s3://" + uri.substr(6);
  return uri;
}

Status RunSparkEngine(const SparkEngineOptions& options, const SparkJob& job, SparkOutcome* outcome) {
  *outcome = SparkOutcome();
  switch (job.engine) {
    case EngineKind::kSpark: return RunLocalSpark(options, job, outcome);
    case EngineKind::kEmrServerless: return RunEmrServerless(options, job, outcome);
    case EngineKind::kEmr: return RunEmrStep(options, job, outcome);
    default:
      return Status::InvalidArgument(fmt::format("\"{}\" is not a cluster engine: use spark, emr or emr-serverless",
                                                 EngineKindName(job.engine)));
  }
}

}  // namespace cloudmerge
