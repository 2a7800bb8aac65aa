// Lambda mode: the configuration (PipelineConfigBuilder::FromEnvironment) and
// clients built once at cold start, then the Runtime API loop handing each
// event to the pipeline's LambdaBatchHandler (pipeline/lambda_batch.h: SQS
// batches, per-bucket stores, the deadline watchdog, whose end of an
// invocation this file supplies).
#include "tools/lambda_command.h"

#include <cstdlib>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/endpoints.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/aws/uri_env.h"
#include "cloudmerge/pipeline/lambda_batch.h"
#include "cloudmerge/pipeline/lambda_runtime.h"
#include "cloudmerge/pipeline/pipeline_config.h"
#include "cloudmerge/pipeline/pipeline_wiring.h"
#include "cloudmerge/pipeline/store/s3_job_store.h"
#include "cloudmerge/pipeline/setting_names.h"

namespace cloudmerge_cli {
namespace {

using namespace cloudmerge;
using nlohmann::json;

// The watchdog's end of an invocation: the invocation error, reported by us
// shortly before the deadline, then a fresh process (Lambda starts one). The
// merge cannot be interrupted cleanly mid-flight; nothing partial is visible.
[[noreturn]] void ReportDeadlineAndExit(HttpTransport* runtime, const std::string& api, JsonLog* log,
                                        const LambdaContext& ctx, const std::string& message) {
  log->Error("lambda.deadline", "", message, {{"request_id", ctx.request_id}});
  HttpRequest req;
  req.method = "POST";
  req.url = fmt::format("http://{}/2018-06-01/runtime/invocation/{}/error", api, ctx.request_id);
  req.headers = {{"Content-Type", "application/json"},
                 {"Lambda-Runtime-Function-Error-Type", "Function.DeadlineExceeded"}};
  std::string body = json{{"errorMessage", message}, {"errorType", "Function.DeadlineExceeded"}}.dump();
  req.body = body;  // a view: the string must outlive Send
  req.timeout_ms = 2000;
  (void)runtime->Send(req);
  std::fflush(stdout);
  std::_Exit(1);
}

// Everything built once, at cold start.
struct LambdaApp {
  AwsEnvironment aws_env = AwsEnvironment::FromProcess();
  std::shared_ptr<HttpTransport> transport;
  std::shared_ptr<S3Client> s3;
  std::unique_ptr<cloudmerge::Env> env;
  std::unique_ptr<JobStore> output;
  std::unique_ptr<Notifier> notifier;
  JsonLog log{stdout};
  std::unique_ptr<LambdaBatchHandler> handler;
  HttpTransport* runtime = nullptr;
  std::string runtime_api;

  Status Init() {
    auto config = PipelineConfigBuilder::FromEnvironment(std::getenv);
    if (!config.ok()) return config.status();
    transport = NewCurlTransport();
    auto credentials = NewDefaultCredentialsChain(aws_env, transport);
    s3 = std::make_shared<S3Client>(S3Config::FromEnvironment(aws_env), credentials, transport);
    auto make_s3 = [this]() -> Result<std::shared_ptr<S3Client>> { return s3; };
    UriEnvOptions eo;
    eo.make_s3_client = make_s3;
    env = NewUriEnv(cloudmerge::Env::Default(), eo);
    auto uri = S3Uri::Parse(config->output);  // checked by the settings table
    output = NewS3JobStore(s3, uri->bucket, uri->key);
    std::vector<std::unique_ptr<Notifier>> channels;
    CM_RETURN_IF_ERROR(AddNotifierChannels(*config, aws_env, credentials, transport, &channels));
    notifier = NewFanoutNotifier(std::move(channels));
    // options.memory_limit and temp_dir stay unset unless configured: the
    // engine's defaults are Lambda's own limits (DefaultMemoryLimit() reads
    // AWS_LAMBDA_FUNCTION_MEMORY_SIZE; DefaultTempParent() is $TMPDIR, which
    // Lambda leaves unset, else /tmp, the function's ephemeral storage).
    // No timer under Lambda: a folder missing an input is reported on its next
    // event after incomplete_wait_ms (docs/reliability.md).
    PipelineOptions options = config->options;
    options.setting_names = LambdaSettingNames();
    options.spark.make_s3_client = make_s3;
    // Success emails link the result and report.html by presigned URLs; Lambda's
    // role credentials are temporary (hours): emails state when the links stop working.
    LinkS3Objects(make_s3, credentials, &options);
    LambdaBatchOptions bo;
    bo.input_prefix = config->input_prefix;
    bo.deadline_margin_ms = config->deadline_margin_ms;
    bo.make_input = [this, prefix = config->input_prefix](const std::string& bucket) {
      return NewS3JobStore(s3, bucket, prefix);
    };
    bo.on_deadline = [this](const LambdaContext& ctx, const std::string& message) {
      ReportDeadlineAndExit(runtime, runtime_api, &log, ctx, message);
    };
    handler = std::make_unique<LambdaBatchHandler>(output.get(), env.get(), notifier.get(), &log, options, bo);
    return Status::OK();
  }

};

}  // namespace

int RunLambda() {
  const char* api_env = std::getenv("AWS_LAMBDA_RUNTIME_API");
  std::string api = api_env ? api_env : "";
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
      [](const std::string& event, const LambdaContext& ctx) { return app.handler->Handle(event, ctx); }, &app.log);
  if (!st.ok()) {
    app.log.Error("lambda.stopped", "", st.message());
    return 1;
  }
  return 0;
}

}  // namespace cloudmerge_cli
