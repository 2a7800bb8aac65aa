// Lambda mode: clients built once at cold start, then the Runtime API loop.
// A watchdog per invocation ends a run that would outlive the function's
// timeout: it reports the invocation error itself, shortly before the
// deadline, and ends the process (Lambda starts a fresh one), instead of
// being killed without a word. The unfinished output is never visible (an
// uncompleted multipart upload; the output bucket's lifecycle rule removes
// it) and the run's claim expires, so a retry starts clean.
// Events: S3 notifications directly, or wrapped in SQS (then each SQS record
// is handled on its own and failures are reported as batchItemFailures, so
// only those messages come back) or in SNS.
#include "tools/lambda_command.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/endpoints.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/aws/uri_env.h"
#include "cloudmerge/base/json_fields.h"
#include "cloudmerge/pipeline/events.h"
#include "cloudmerge/pipeline/lambda_runtime.h"
#include "cloudmerge/pipeline/serve.h"
#include "cloudmerge/pipeline/store/s3_job_store.h"
#include "cloudmerge/pipeline/setting_names.h"

namespace cloudmerge_cli {
namespace {

using namespace cloudmerge;
using nlohmann::json;

std::string Getenv(const char* name, const char* fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

class DeadlineWatchdog {
 public:
  DeadlineWatchdog(const LambdaContext& ctx, HttpTransport* runtime, std::string api, JsonLog* log, int64_t margin_ms)
      : ctx_(ctx), runtime_(runtime), api_(std::move(api)), log_(log), margin_ms_(margin_ms) {
    if (ctx_.deadline_ms > 0) thread_ = std::thread([this] { Watch(); });
  }
  ~DeadlineWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Watch() {
    std::unique_lock<std::mutex> lock(mu_);
    auto wait = std::chrono::milliseconds(std::max<int64_t>(ctx_.RemainingMs() - margin_ms_, 0));
    if (cv_.wait_for(lock, wait, [&] { return done_; })) return;
    std::string message = fmt::format(
        "the job did not finish within the function's time limit ({} ms were left when it was stopped). "
        "Nothing was written to the output. Give the function more memory (more CPU), split the input, or run "
        "this job on the cluster engine (job.json: \"engine\": \"emr-serverless\").",
        ctx_.RemainingMs());
    log_->Error("lambda.deadline", "", message, {{"request_id", ctx_.request_id}});
    std::string body = json{{"errorMessage", message}, {"errorType", "Function.DeadlineExceeded"}}.dump();
    HttpRequest req;
    req.method = "POST";
    req.url = fmt::format("http://{}/2018-06-01/runtime/invocation/{}/error", api_, ctx_.request_id);
    req.headers = {{"Content-Type", "application/json"},
                   {"Lambda-Runtime-Function-Error-Type", "Function.DeadlineExceeded"}};
    req.body = body;
    req.timeout_ms = 2000;
    (void)runtime_->Send(req);
    std::fflush(stdout);
    std::_Exit(1);  // the merge cannot be interrupted cleanly mid-flight; nothing partial is visible
  }
  LambdaContext ctx_;
  HttpTransport* runtime_;
  std::string api_;
  JsonLog* log_;
  int64_t margin_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// Everything built once, at cold start.
struct LambdaApp {
  AwsEnvironment aws_env = AwsEnvironment::FromProcess();
  std::shared_ptr<HttpTransport> transport;
  std::shared_ptr<S3Client> s3;
  std::unique_ptr<cloudmerge::Env> env;
  std::unique_ptr<JobStore> output;
  std::unique_ptr<Notifier> notifier;
  JsonLog log{stdout};
  PipelineOptions options;
  std::string input_prefix;
  std::map<std::string, std::unique_ptr<JobStore>> inputs;  // by bucket
  HttpTransport* runtime = nullptr;
  std::string runtime_api;
  int64_t deadline_margin_ms = 10000;

  Status Init() {
    transport = NewCurlTransport();
    auto credentials = NewDefaultCredentialsChain(aws_env, transport);
    s3 = std::make_shared<S3Client>(S3Config::FromEnvironment(aws_env), credentials, transport);
    UriEnvOptions eo;
    eo.make_s3_client = [this]() -> Result<std::shared_ptr<S3Client>> { return s3; };
    env = NewUriEnv(cloudmerge::Env::Default(), eo);
    std::string out = Getenv("CLOUDMERGE_OUTPUT");
    if (out.empty())
      return Status::InvalidArgument("CLOUDMERGE_OUTPUT is not set: give the function the results location, "
                                     "s3://bucket/prefix/");
    auto uri = S3Uri::Parse(out);
    if (!uri.ok()) return Status::InvalidArgument("CLOUDMERGE_OUTPUT: " + uri.status().message());
    output = NewS3JobStore(s3, uri->bucket, uri->key);
    input_prefix = Getenv("CLOUDMERGE_INPUT_PREFIX");
    if (!input_prefix.empty() && input_prefix.back() != '/') input_prefix += '/';

    std::vector<std::unique_ptr<Notifier>> channels;
    if (std::string topic = Getenv("CLOUDMERGE_SNS_TOPIC_ARN"); !topic.empty())
      channels.push_back(NewSnsNotifier({topic, ResolveRegion(aws_env), ConfiguredEndpointUrl(AwsService::kSns, aws_env)},
                                        credentials, transport));
    if (std::string smtp = Getenv("CLOUDMERGE_SMTP_URL"); !smtp.empty()) {
      SmtpOptions so;
      so.url = smtp;
      so.from = Getenv("CLOUDMERGE_MAIL_FROM", "cloudmerge@localhost");
      std::stringstream to(Getenv("CLOUDMERGE_MAIL_TO"));
      for (std::string a; std::getline(to, a, ',');)
        if (!a.empty()) so.to.push_back(a);
      so.username = Getenv("CLOUDMERGE_SMTP_USER");
      so.password = Getenv("CLOUDMERGE_SMTP_PASSWORD");
      channels.push_back(NewSmtpNotifier(so));
    }
    notifier = NewFanoutNotifier(std::move(channels));
    options.lease_ms = std::atoll(Getenv("CLOUDMERGE_LEASE_SECONDS", "900").c_str()) * 1000;
    // The command engine: off unless the function registers commands (deploy/template.yaml, AllowedCommands).
    if (std::string commands = Getenv("CLOUDMERGE_COMMANDS"); !commands.empty())
      CM_RETURN_IF_ERROR(AddCommandsJson(commands, &options.commands));
    std::stringstream pass(Getenv("CLOUDMERGE_COMMAND_ENV"));
    for (std::string name; std::getline(pass, name, ',');)
      if (!name.empty()) options.commands.pass_env.push_back(name);
    if (double t = std::atof(Getenv("CLOUDMERGE_COMMAND_TIMEOUT_SECONDS").c_str()); t > 0)
      options.commands.timeout_s = t;
    deadline_margin_ms = std::atoll(Getenv("CLOUDMERGE_DEADLINE_MARGIN_MS", "10000").c_str());
    // Cluster engines (job.json "engine": emr-serverless | emr | auto; docs/spark.md, deploy/README.md).
    options.spark.application_id = Getenv("CLOUDMERGE_EMR_APPLICATION_ID");
    options.spark.execution_role_arn = Getenv("CLOUDMERGE_EMR_EXECUTION_ROLE_ARN");
    options.spark.cluster_id = Getenv("CLOUDMERGE_EMR_CLUSTER_ID");
    options.spark.artifacts = Getenv("CLOUDMERGE_SPARK_ARTIFACTS");
    options.spark.region = Getenv("CLOUDMERGE_EMR_REGION");
    options.spark.poll_seconds = std::max(0.05, std::atof(Getenv("CLOUDMERGE_EMR_POLL_SECONDS", "10").c_str()));
    options.spark.make_s3_client = [this]() -> Result<std::shared_ptr<S3Client>> { return s3; };
    options.auto_engine = Getenv("CLOUDMERGE_AUTO_ENGINE", "emr-serverless");
    if (double bps = std::atof(Getenv("CLOUDMERGE_NATIVE_BYTES_PER_SECOND").c_str()); bps > 0)
      options.native_bytes_per_second = bps;
    if (double budget = std::atof(Getenv("CLOUDMERGE_NATIVE_TIME_BUDGET_S").c_str()); budget > 0)
      options.native_time_budget_s = budget;
    if (double margin = std::atof(Getenv("CLOUDMERGE_AUTO_MARGIN_S").c_str()); margin > 0)
      options.auto_margin_s = margin;
    options.setting_names = LambdaSettingNames();
    // options.memory_limit and temp_dir stay unset on purpose: the engine's
    // defaults are Lambda's own limits (DefaultMemoryLimit() reads
    // AWS_LAMBDA_FUNCTION_MEMORY_SIZE; DefaultTempParent() is $TMPDIR, which
    // Lambda leaves unset, else /tmp, the function's ephemeral storage).
    // Success emails link the result and report.html by presigned URLs.
    options.share_link = [this](const std::string& uri, int64_t expires_s) -> Result<std::string> {
      if (!S3Uri::IsS3(uri)) return uri;
      auto parsed = S3Uri::Parse(uri);
      if (!parsed.ok()) return parsed.status();
      return s3->PresignGet(*parsed, expires_s);
    };
    // Lambda's role credentials are temporary (hours): emails state when the links really stop working.
    options.signing_credentials_expiry = [credentials]() -> int64_t {
      auto creds = credentials->Get();
      if (!creds.ok()) return 0;
    // A session token without a stated expiry (Lambda's role, given as variables): temporary, end unknown.
    if (creds->expiration == 0 && !creds->session_token.empty()) return -1;
    return static_cast<int64_t>(creds->expiration);
    };
    // No timer under Lambda: a folder missing an input is reported on its next event after this wait (docs/reliability.md).
    options.incomplete_wait_ms = std::atoll(Getenv("CLOUDMERGE_INCOMPLETE_WAIT_SECONDS", "900").c_str()) * 1000;
    return Status::OK();
  }

  JobStore* InputFor(const std::string& bucket) {
    auto& store = inputs[bucket];
    if (!store) store = NewS3JobStore(s3, bucket, input_prefix);
    return store.get();
  }

  // One S3 notification (any wrapping): its jobs run; non-ok when one must be retried.
  Status HandleNotification(const std::string& body) {
    auto parsed = ParseS3Events(body);
    if (!parsed.ok()) return parsed.status();
    std::map<std::string, bool> buckets;
    for (const auto& e : parsed->created) buckets[e.bucket] = true;
    for (const auto& [bucket, unused] : buckets) {
      JobStore* in = InputFor(bucket);
      CM_RETURN_IF_ERROR(JobRunner::CheckNoSelfTrigger(*in, *output));
      JobRunner runner(in, output.get(), env.get(), notifier.get(), &log, options);
      auto outcomes = HandleS3Event(body, &runner, bucket, input_prefix, &log);
      if (!outcomes.ok()) return outcomes.status();
      for (const auto& [job, outcome] : *outcomes)
        if (outcome == JobOutcome::kBusy)
          return Status::IOError(fmt::format("job {} is being processed by another invocation; retry later", job));
    }
    return Status::OK();
  }

  Result<std::string> Handle(const std::string& event, const LambdaContext& ctx) {
    DeadlineWatchdog watchdog(ctx, runtime, runtime_api, &log, deadline_margin_ms);
    // "auto" budgets against the time left, and a wait for a cluster run
    // stops before the watchdog would end the process.
    options.deadline_ms = ctx.deadline_ms > 0 ? ctx.deadline_ms - deadline_margin_ms : 0;
    json doc = json::parse(event, nullptr, false);
    const json& records = JsonMember(doc, "Records");
    bool sqs_batch = records.is_array() && !records.empty() && JsonString(records[0], "eventSource") == "aws:sqs";
    if (!sqs_batch) {
      CM_RETURN_IF_ERROR(HandleNotification(event));
      return std::string(R"({"status":"ok"})");
    }
    json failures = json::array();
    for (const auto& record : records) {
      Status st = HandleNotification(JsonString(record, "body"));
      if (!st.ok()) {
        log.Error("lambda.record_failed", "", st.message(), {{"message_id", JsonString(record, "messageId")}});
        failures.push_back({{"itemIdentifier", JsonString(record, "messageId")}});
      }
    }
    return json{{"batchItemFailures", failures}}.dump();
  }
};

}  // namespace

int RunLambda() {
  std::string api = Getenv("AWS_LAMBDA_RUNTIME_API");
  if (api.empty()) {
    fmt::print(stderr, "Error [cloudmerge lambda]: AWS_LAMBDA_RUNTIME_API is not set: this mode runs inside AWS "
                       "Lambda (or the Runtime Interface Emulator).\n");
    return 2;
  }
  // The Runtime API's /next blocks until an event comes: no idle timeout on it.
  HttpTransportOptions runtime_options;
  runtime_options.low_speed_timeout_s = 0;
  auto runtime_transport = NewCurlTransport(runtime_options);
  static LambdaApp app;
  app.runtime = runtime_transport.get();
  app.runtime_api = api;
  Status init = app.Init();
  if (!init.ok()) {
    app.log.Error("lambda.init_failed", "", init.message());
    (void)ReportLambdaInitError(runtime_transport.get(), api, init);
    return 1;
  }
  Status st = RunLambdaLoop(
      runtime_transport.get(), api,
      [](const std::string& event, const LambdaContext& ctx) { return app.Handle(event, ctx); }, &app.log);
  if (!st.ok()) {
    app.log.Error("lambda.stopped", "", st.message());
    return 1;
  }
  return 0;
}

}  // namespace cloudmerge_cli
