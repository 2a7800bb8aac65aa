// `cloudmerge serve`: builds the stores, the notifier (directory, SMTP, SNS),
// the JSON log and the job runner, then runs the local or the queue loop.
#include "tools/serve_command.h"


#include <cstdlib>
#include <memory>

#include <fmt/format.h>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/endpoints.h"
#include "cloudmerge/aws/uri_env.h"
#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/pipeline/cloudwatch_logs.h"
#include "cloudmerge/pipeline/store/confined_env.h"
#include "cloudmerge/pipeline/store/s3_job_store.h"
#include "cloudmerge/pipeline/dashboard.h"
#include "cloudmerge/pipeline/pipeline_wiring.h"
#include "cloudmerge/pipeline/serve.h"
#include "cloudmerge/pipeline/setting_names.h"

namespace cloudmerge_cli {
namespace {

using namespace cloudmerge;

constexpr const char* kServeHelp = R"(Run the pipeline: merge each job folder as it arrives, and email the result.

Each job is a folder holding x_list.txt and y_list.txt (optionally job.json);
when both are there the merge runs, the result and a report.json go to the
output under the same folder, and an email tells the scientist (inputs
received, result ready, or what went wrong).

On this machine, no AWS account needed (folders instead of buckets, emails as files):
  cloudmerge serve --local pipeline/        # pipeline/input/<job>/ -> pipeline/output/<job>/,
                                            # emails as .eml files in pipeline/outbox/
  cloudmerge serve --local pipeline/ --once # run what is ready, then exit

On AWS (S3 event notifications delivered to an SQS queue):
  cloudmerge serve --queue-url https://sqs.eu-west-1.amazonaws.com/123456789012/cloudmerge-events \
      --input s3://lab-input/ --output s3://lab-results/ --sns-topic-arn arn:aws:sns:...:cloudmerge

SMTP user and password come from CLOUDMERGE_SMTP_USER / CLOUDMERGE_SMTP_PASSWORD
or --smtp-secrets-file (lines user=... and password=...), never the command line.

Command engine: off unless the operator registers commands, which a job.json
then names ({"engine": "command", "command": "v2"}); a job never gives a program:
  --allow-command 'v2=python3 /opt/analysis_v2.py {x} {y} {out}'
Commands run with a clean environment (plus --command-env NAMES), in their own
process group, killed after --command-timeout seconds (docs/security.md).

Every upload is answered: a folder holding one input but not the other gets
one email after --incomplete-wait-seconds (default 15 minutes) saying what is
missing; a near-miss name (y_list.tsv, Y_list.txt) is reported at once; the
same files uploaded again get one email pointing at the existing result.

Memory: --workers jobs run at once (default: one per CPU, at least 512 MiB
each), sharing --memory-limit evenly; a job bigger than its share is
partitioned to spill files in --temp-dir and joined piece by piece, as
`cloudmerge merge` does.

Dashboard: --http 127.0.0.1:8080 serves the jobs' states and reports, /metrics
(Prometheus) and /healthz; another address needs --http-token (or
CLOUDMERGE_HTTP_TOKEN), then required as a bearer token or ?token=.)";

// s3://bucket/prefix/ -> (bucket, "prefix/"); the URI was checked when the flags were read.
std::pair<std::string, std::string> SplitS3(const std::string& uri) {
  auto u = S3Uri::Parse(uri);
  std::string prefix = u.ok() ? u->key : "";
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  return {u.ok() ? u->bucket : "", prefix};
}

// Environment prices, then the flags that were given.
CostPrices Prices(const ServeFlags& f) {
  CostPrices p = CostPrices::FromEnvironment(std::getenv);
  auto set = [](double flag, double* field) {
    if (flag >= 0) *field = flag;
  };
  set(f.lambda_memory_mb, &p.lambda_memory_mb);
  set(f.price_lambda_gb_s, &p.lambda_gb_second);
  set(f.price_lambda_million, &p.lambda_per_million_requests);
  set(f.price_s3_get, &p.s3_get_per_1000);
  set(f.price_s3_put, &p.s3_put_per_1000);
  set(f.price_transfer_gb, &p.transfer_per_gb);
  return p;
}

int Fail(JsonLog* log, const Status& st) {
  log->Error("serve.failed", "", st.message());
  fmt::print(stderr, "Error [cloudmerge serve]: {}\n", st.message());
  return st.ExitCode();
}

}  // namespace

CLI::App* AddServeCommand(CLI::App* app, ServeFlags* f, S3Flags* s3) {
  auto* cmd = app->add_subcommand("serve", kServeHelp);
  cmd->add_option("--local", f->local_dir, "Local mode: watch DIR/input, write DIR/output and DIR/outbox");
  cmd->add_flag("--once", f->once, "Local mode: run the jobs that are ready, then exit");
  cmd->add_option("--poll-ms", f->poll_ms, "Local mode: scan interval in ms (default 1000)")->check(CLI::Range(10, 3600000));
  cmd->add_option("--queue-url", f->queue_url, "SQS queue receiving the input bucket's S3 event notifications");
  cmd->add_option("--visibility-timeout", f->visibility_s, "Queue mode: visibility timeout while a job runs (default 300)")
      ->check(CLI::Range(1, 43200));
  cmd->add_option("--wait-seconds", f->wait_s, "Queue mode: long-poll wait (default 20)")->check(CLI::Range(0, 20));
  cmd->add_option("--max-messages", f->max_messages, "Queue mode: exit after this many messages (default: never)");
  cmd->add_option("--idle-exit-seconds", f->idle_exit_s, "Queue mode: exit when no message came for this long (default: never)");
  cmd->add_option("--workers", f->workers,
                  "Jobs run at once, sharing --memory-limit evenly, so a small job does not wait behind a big one "
                  "(default: one per CPU, with at least 512 MiB each)")
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--cloudwatch-log-group", f->cloudwatch_log_group,
                  "Also send the log lines to this CloudWatch Logs group (for serve outside Lambda)");
  cmd->add_option("--cloudwatch-log-stream", f->cloudwatch_log_stream,
                  "Log stream for --cloudwatch-log-group (default: host-pid-start time)");
  cmd->add_option("--http", f->http, "Serve a read-only dashboard, /metrics and /healthz on HOST:PORT (e.g. 127.0.0.1:8080)");
  cmd->add_option("--http-token", f->http_token,
                  "Token the dashboard requires (bearer or ?token=); needed to bind a non-loopback address. "
                  "Prefer CLOUDMERGE_HTTP_TOKEN: the command line is visible to other users");
  cmd->add_option("--http-header-timeout", f->http_header_timeout_s,
                  "Seconds a dashboard client has to send a whole request head, counted from connecting (default 10)")
      ->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--lambda-memory-mb", f->lambda_memory_mb, "Cost estimate: Lambda memory (default 10240, or CLOUDMERGE_LAMBDA_MEMORY_MB)")
      ->check(CLI::Range(128.0, 10240.0));
  cmd->add_option("--price-lambda-gb-second", f->price_lambda_gb_s, "Cost estimate: USD per Lambda GB-second (default 0.0000166667)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--price-lambda-million-requests", f->price_lambda_million, "Cost estimate: USD per 1M Lambda requests (default 0.20)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--price-s3-get-1000", f->price_s3_get, "Cost estimate: USD per 1000 S3 GETs (default 0.0004)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--price-s3-put-1000", f->price_s3_put, "Cost estimate: USD per 1000 S3 PUT/LIST requests (default 0.005)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--price-transfer-gb", f->price_transfer_gb, "Cost estimate: USD per GB moved (default 0: same region)")
      ->check(CLI::NonNegativeNumber);
  f->settings.AddFlags(cmd, kServeFlag);  // the pipeline settings (pipeline_config.h)
  AddS3Options(cmd, s3);
  return cmd;
}

int RunServe(const ServeFlags& f, const S3Flags& s3) {
  JsonLog log(stdout);
  if (f.local_dir.empty() == f.queue_url.empty())
    return Fail(&log, Status::InvalidArgument("give either --local DIR or --queue-url URL (with --input and --output)"));
  auto config = f.settings.FromFlags(std::getenv);
  if (!config.ok()) return Fail(&log, config.status());
  std::unique_ptr<CloudWatchLogsSink> cloudwatch;  // declared before anything that logs through it
  if (!f.cloudwatch_log_group.empty()) {
    auto aws_env = AwsEnvironment::FromProcess();
    auto transport = NewCurlTransport();
    CloudWatchLogsOptions co;
    co.log_group = f.cloudwatch_log_group;
    co.log_stream = f.cloudwatch_log_stream;
    co.region = ResolveRegion(aws_env);
    co.endpoint_url = ResolveEndpoint(AwsService::kLogs, co.region, aws_env).url();  // --endpoint-url is S3's only
    cloudwatch = std::make_unique<CloudWatchLogsSink>(co, NewDefaultCredentialsChain(aws_env, transport), transport);
    Status st = cloudwatch->Start();
    if (!st.ok()) return Fail(&log, st);
    log.AddSink([sink = cloudwatch.get()](const std::string& line, long long ms) { sink->Add(line, ms); });
  }

  auto aws_env = AwsEnvironment::FromProcess();
  auto transport = NewCurlTransport();
  auto credentials = NewDefaultCredentialsChain(aws_env, transport);
  std::shared_ptr<S3Client> client;
  auto s3_client = [&]() -> Result<std::shared_ptr<S3Client>> {
    if (!client) {
      auto c = MakeS3Client(s3);
      if (!c.ok()) return c.status();
      client = *c;
    }
    return client;
  };
  UriEnvOptions eo;
  eo.make_s3_client = s3_client;
  // Local mode: files of the input folder are read without following links (confined_env.h).
  std::unique_ptr<Env> confined;
  if (!f.local_dir.empty()) confined = NewConfinedEnv(Env::Default(), f.local_dir + "/input");
  auto env = NewUriEnv(confined ? confined.get() : Env::Default(), eo);

  PipelineOptions po = config->options;
  po.setting_names = ServeSettingNames();
  po.stop = InstallStopFlag();
  po.spark.s3_endpoint = s3.endpoint_url;  // local Spark's s3a (empty: the job reads AWS_ENDPOINT_URL*)
  po.spark.make_s3_client = s3_client;
  po.prices = Prices(f);
  unsigned workers = f.workers ? f.workers : DefaultWorkers(po.memory_limit);
  po.concurrent_runs = workers;
  if (!f.cloudwatch_log_group.empty())
    po.log_location = DescribeCloudWatchStream(cloudwatch->options().region, cloudwatch->options().log_group,
                                               cloudwatch->options().log_stream);
  LinkS3Objects(s3_client, credentials, &po);

  std::unique_ptr<JobStore> in, out;
  std::string in_bucket, in_prefix;
  std::vector<std::unique_ptr<Notifier>> channels;
  if (!f.local_dir.empty()) {
    in = NewLocalJobStore(f.local_dir + "/input");
    out = NewLocalJobStore(f.local_dir + "/output");
    channels.push_back(NewDirectoryNotifier(f.local_dir + "/outbox", config->mail_from, config->mail_to));
  } else {
    if (config->input.empty() || config->output.empty())
      return Fail(&log, Status::InvalidArgument("queue mode needs --input s3://bucket/prefix/ and --output s3://bucket/prefix/"));
    auto c = s3_client();
    if (!c.ok()) return Fail(&log, c.status());
    auto i = SplitS3(config->input);
    auto o = SplitS3(config->output);
    std::tie(in_bucket, in_prefix) = i;
    in = NewS3JobStore(*c, in_bucket, in_prefix);
    out = NewS3JobStore(*c, o.first, o.second);
  }
  if (Status st = AddNotifierChannels(*config, aws_env, credentials, transport, &channels); !st.ok())
    return Fail(&log, st);
  auto notifier = NewFanoutNotifier(std::move(channels));

  Status check = JobRunner::CheckNoSelfTrigger(*in, *out);
  if (!check.ok()) return Fail(&log, check);
  JobRunner runner(in.get(), out.get(), env.get(), notifier.get(), &log, po);

  std::unique_ptr<Dashboard> dashboard;
  if (!f.http.empty()) {
    std::string token = f.http_token;
    if (const char* t = std::getenv("CLOUDMERGE_HTTP_TOKEN"); token.empty() && t) token = t;
    auto address = ParseHttpAddress(f.http, token);
    if (!address.ok()) return Fail(&log, address.status());
    address->header_timeout_s = f.http_header_timeout_s;
    dashboard = std::make_unique<Dashboard>(in.get(), out.get(), po.naming, &log, *address);
    Status started = dashboard->Start();
    if (!started.ok()) return Fail(&log, started);
  }

  ServeOptions so;
  so.poll_ms = f.poll_ms;
  so.once = f.once;
  so.visibility_s = f.visibility_s;
  so.wait_s = f.wait_s;
  so.max_messages = f.max_messages;
  so.idle_exit_s = f.idle_exit_s;
  so.workers = workers;
  Status st;
  if (!f.local_dir.empty()) {
    st = ServeLocal(&runner, in.get(), &log, so);
  } else {
    // "": the queue URL's host.
    SqsClient sqs(f.queue_url, ResolveRegion(aws_env), ConfiguredEndpointUrl(AwsService::kSqs, aws_env), credentials,
                  transport);
    st = ServeQueue(&sqs, &runner, in_bucket, in_prefix, &log, so);
  }
  if (!st.ok()) return Fail(&log, st);
  return 0;
}

}  // namespace cloudmerge_cli
