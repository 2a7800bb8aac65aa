// `cloudmerge serve`: builds the stores, the notifier (directory, SMTP, SNS),
// the JSON log and the job runner, then runs the local or the queue loop.
#include "tools/serve_command.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
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

// s3://bucket/prefix/ -> (bucket, "prefix/")
Result<std::pair<std::string, std::string>> SplitS3(const std::string& uri, const char* what) {
  auto u = S3Uri::Parse(uri);
  if (!u.ok())
    return Status::InvalidArgument(fmt::format("--{} must be an s3://bucket/prefix/ URI: {}", what, u.status().message()));
  std::string prefix = u->key;
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  return std::make_pair(u->bucket, prefix);
}

Status LoadSmtpSecrets(const std::string& file, SmtpOptions* o) {
  if (const char* u = std::getenv("CLOUDMERGE_SMTP_USER")) o->username = u;
  if (const char* p = std::getenv("CLOUDMERGE_SMTP_PASSWORD")) o->password = p;
  if (file.empty()) return Status::OK();
  std::ifstream in(file);
  if (!in) return Status::InvalidArgument(fmt::format("cannot read the SMTP secrets file {}", file));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("user=", 0) == 0) o->username = line.substr(5);
    if (line.rfind("password=", 0) == 0) o->password = line.substr(9);
  }
  return Status::OK();
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

// --memory-limit and --temp-dir, checked before any job runs: a typo would
// otherwise surface only when a job is big enough to spill, as a failure
// retried until the message goes to the dead-letter queue.
Status EngineLimits(const ServeFlags& f, PipelineOptions* po) {
  if (!f.memory_limit.empty()) {
    auto bytes = ParseByteSize(f.memory_limit);
    if (!bytes.ok()) return Status::InvalidArgument("--memory-limit: " + bytes.status().message());
    if (*bytes == 0)
      return Status::InvalidArgument(fmt::format("--memory-limit: invalid size \"{}\": it must be more than 0 bytes, "
                                                 "such as 2GiB (or leave the option out for the default)",
                                                 f.memory_limit));
    po->memory_limit = *bytes;
  }
  if (!f.temp_dir.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_directory(f.temp_dir, ec) || access(f.temp_dir.c_str(), W_OK | X_OK) != 0)
      return Status::InvalidArgument(fmt::format("--temp-dir {}: not a directory this user can write to; create "
                                                 "it, or give another one (the default is $TMPDIR, else /tmp)",
                                                 f.temp_dir));
    po->temp_dir = f.temp_dir;
  }
  return Status::OK();
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
  cmd->add_option("--input", f->input, "Queue mode: the input location, s3://bucket/prefix/");
  cmd->add_option("--output", f->output, "Queue mode: the output location, s3://bucket/prefix/ (not inside --input)");
  cmd->add_option("--sns-topic-arn", f->sns_topic_arn, "Publish notifications to this SNS topic");
  cmd->add_option("--smtp-url", f->smtp_url, "Send notifications by SMTP, e.g. smtp://mail.example.org:587");
  cmd->add_option("--mail-from", f->mail_from, "Sender address of notification emails");
  cmd->add_option("--mail-to", f->mail_to, "Recipient of every notification (repeatable; job.json may add more)");
  cmd->add_option("--smtp-secrets-file", f->smtp_secrets_file, "File with user=... and password=... for SMTP AUTH");
  cmd->add_flag("--smtp-require-tls", f->smtp_require_tls, "Refuse to send unless the SMTP server offers STARTTLS");
  cmd->add_option("--lease-seconds", f->lease_s, "A claimed job not renewed for this long is taken over (default 300)")
      ->check(CLI::Range(1, 86400));
  cmd->add_option("--visibility-timeout", f->visibility_s, "Queue mode: visibility timeout while a job runs (default 300)")
      ->check(CLI::Range(1, 43200));
  cmd->add_option("--wait-seconds", f->wait_s, "Queue mode: long-poll wait (default 20)")->check(CLI::Range(0, 20));
  cmd->add_option("--max-messages", f->max_messages, "Queue mode: exit after this many messages (default: never)");
  cmd->add_option("--idle-exit-seconds", f->idle_exit_s, "Queue mode: exit when no message came for this long (default: never)");
  cmd->add_option("-t,--threads", f->threads, "Engine threads per job (default: the CPUs shared out between --workers)")
      ->check(CLI::Range(1u, 256u));
  cmd->add_option("--workers", f->workers,
                  "Jobs run at once, sharing --memory-limit evenly, so a small job does not wait behind a big one "
                  "(default: one per CPU, with at least 512 MiB each)")
      ->check(CLI::Range(1u, 64u));
  cmd->add_option("--incomplete-wait-seconds", f->incomplete_wait_s,
                  "A job folder with one input but not the other gets one email saying what is missing after this "
                  "long (default 900 = 15 minutes); a file with a near-miss name (y_list.tsv) is reported at once")
      ->check(CLI::Range(int64_t{0}, int64_t{7 * 24 * 3600}));
  cmd->add_option("--memory-limit", f->memory_limit,
                  "Memory a merge may use, such as 2GiB or 800MB (default: 60% of the memory available — physical, "
                  "cgroup or Lambda limit); bigger jobs are partitioned to --temp-dir and joined piece by piece");
  cmd->add_option("--temp-dir", f->temp_dir,
                  "Where a merge bigger than --memory-limit spills (default: $TMPDIR, else /tmp); needs free space "
                  "for about both inputs' size");
  cmd->add_option("--allow-command", f->allow_commands,
                  "Turn on the command engine with this command, NAME=ARGV (ARGV: words, or a JSON list; {x}, {y}, "
                  "{out} are the inputs and the result). Repeatable; a job.json names one: \"command\": \"NAME\"")
      ->allow_extra_args(false);
  cmd->add_option("--command-env", f->command_env,
                  "A variable of this worker's environment passed on to commands (repeatable; by default they get "
                  "only PATH, HOME, TMPDIR and LANG: no credentials)")
      ->allow_extra_args(false);
  cmd->add_option("--command-timeout", f->command_timeout_s,
                  "Seconds a command may run before its process group is killed and the job fails (default 300)")
      ->check(CLI::Range(1.0, 86400.0));
  cmd->add_option("--x-name", f->x_name, "Name of a job's x input (default x_list.txt)");
  cmd->add_option("--y-name", f->y_name, "Name of a job's y input (default y_list.txt)");
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
  cmd->add_option("--link-expiry-seconds", f->link_expiry_s,
                  "Validity of the presigned links in success emails (default 604800 = 7 days, S3's maximum)")
      ->check(CLI::Range(int64_t{1}, int64_t{604800}));
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
  const char* cluster = "Cluster engines (job.json \"engine\": spark, emr-serverless, emr, auto; docs/spark.md)";
  cmd->add_option("--spark-master", f->spark_master, "Spark master for engine \"spark\" (default: local[*])")
      ->group(cluster);
  cmd->add_option("--spark-conf", f->spark_conf, "Extra spark-submit --conf key=value (repeatable)")
      ->allow_extra_args(false)
      ->group(cluster);
  cmd->add_option("--emr-application-id", f->emr_application_id, "EMR Serverless application ID")->group(cluster);
  cmd->add_option("--emr-execution-role-arn", f->emr_execution_role_arn, "EMR Serverless job runtime role ARN")
      ->group(cluster);
  cmd->add_option("--emr-cluster-id", f->emr_cluster_id, "EMR cluster ID (j-...) for engine \"emr\"")->group(cluster);
  cmd->add_option("--spark-artifacts", f->spark_artifacts, "s3://bucket/prefix/ where the job script is uploaded")
      ->group(cluster);
  cmd->add_option("--emr-region", f->emr_region, "AWS region of the EMR calls (default: as the AWS CLI finds it)")
      ->group(cluster);
  cmd->add_option("--emr-endpoint-url", f->emr_endpoint,
                  "EMR / EMR Serverless endpoint (default: AWS_ENDPOINT_URL_EMR[_SERVERLESS], AWS_ENDPOINT_URL, else "
                  "AWS)")
      ->group(cluster);
  cmd->add_option("--emr-poll-seconds", f->emr_poll_seconds, "Seconds between status polls (default: 10)")
      ->check(CLI::Range(0.05, 3600.0))
      ->group(cluster);
  cmd->add_option("--emr-timeout-minutes", f->emr_timeout_minutes,
                  "Give up waiting for a cluster run after this long: the job fails (default: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->group(cluster);
  cmd->add_option("--auto-engine", f->auto_engine,
                  "Where \"auto\" sends a job that does not fit the native time budget (default: emr-serverless)")
      ->check(CLI::IsMember({"spark", "emr-serverless", "emr"}).description(""))
      ->type_name("spark|emr-serverless|emr")
      ->group(cluster);
  cmd->add_option("--native-time-budget", f->native_time_budget_s,
                  "\"auto\": seconds a native run may take (default: 900); longer estimates go to --auto-engine")
      ->check(CLI::NonNegativeNumber)
      ->group(cluster);
  cmd->add_option("--native-bytes-per-second", f->native_bytes_per_second,
                  "\"auto\": the native engine's input bytes per second (default: CLOUDMERGE_NATIVE_BYTES_PER_SECOND, "
                  "else 50e6, from docs/benchmarks.md)")
      ->check(CLI::NonNegativeNumber)
      ->group(cluster);
  AddS3Options(cmd, s3);
  return cmd;
}

int RunServe(const ServeFlags& f, const S3Flags& s3) {
  JsonLog log(stdout);
  if (f.local_dir.empty() == f.queue_url.empty())
    return Fail(&log, Status::InvalidArgument("give either --local DIR or --queue-url URL (with --input and --output)"));
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

  PipelineOptions po;
  po.naming.x_name = f.x_name;
  po.naming.y_name = f.y_name;
  po.lease_ms = int64_t{f.lease_s} * 1000;
  po.threads = f.threads;
  po.setting_names = ServeSettingNames();
  if (Status limits = EngineLimits(f, &po); !limits.ok()) return Fail(&log, limits);
  po.stop = InstallStopFlag();
  for (const auto& spec : f.allow_commands) {
    Status st = AddCommand(spec, &po.commands);
    if (!st.ok()) return Fail(&log, Status::InvalidArgument("--allow-command: " + st.message()));
  }
  po.commands.pass_env = f.command_env;
  po.commands.timeout_s = f.command_timeout_s;
  po.spark.master = f.spark_master;
  po.spark.conf = f.spark_conf;
  po.spark.application_id = f.emr_application_id;
  po.spark.execution_role_arn = f.emr_execution_role_arn;
  po.spark.cluster_id = f.emr_cluster_id;
  po.spark.artifacts = f.spark_artifacts;
  po.spark.region = f.emr_region;
  po.spark.endpoint = f.emr_endpoint;
  po.spark.s3_endpoint = s3.endpoint_url;  // local Spark's s3a (empty: the job reads AWS_ENDPOINT_URL*)
  po.spark.poll_seconds = f.emr_poll_seconds;
  po.spark.timeout_minutes = f.emr_timeout_minutes;
  po.spark.make_s3_client = s3_client;
  po.auto_engine = f.auto_engine;
  po.native_time_budget_s = f.native_time_budget_s;
  if (f.native_bytes_per_second > 0) {
    po.native_bytes_per_second = f.native_bytes_per_second;
  } else if (const char* v = std::getenv("CLOUDMERGE_NATIVE_BYTES_PER_SECOND"); v && std::atof(v) > 0) {
    po.native_bytes_per_second = std::atof(v);
  }
  po.prices = Prices(f);
  po.link_expiry_s = f.link_expiry_s;
  po.incomplete_wait_ms = f.incomplete_wait_s * 1000;
  unsigned workers = f.workers ? f.workers : DefaultWorkers(po.memory_limit);
  po.concurrent_runs = workers;
  if (!f.cloudwatch_log_group.empty())
    po.log_location = DescribeCloudWatchStream(cloudwatch->options().region, cloudwatch->options().log_group,
                                               cloudwatch->options().log_stream);
  // Emails link S3 objects by presigned GET URLs (the recipient needs no AWS account).
  po.share_link = [&](const std::string& uri, int64_t expires_s) -> Result<std::string> {
    if (!S3Uri::IsS3(uri)) return uri;
    auto parsed = S3Uri::Parse(uri);
    if (!parsed.ok()) return parsed.status();
    auto c = s3_client();
    if (!c.ok()) return c.status();
    return (*c)->PresignGet(*parsed, expires_s);
  };
  // The credentials the S3 client signs with come from the same chain: the
  // links die when they expire (temporary credentials), asked when a link is made.
  po.signing_credentials_expiry = [&]() -> int64_t {
    auto creds = credentials->Get();
    if (!creds.ok()) return 0;
    // A session token without a stated expiry (Lambda's role, given as variables): temporary, end unknown.
    if (creds->expiration == 0 && !creds->session_token.empty()) return -1;
    return static_cast<int64_t>(creds->expiration);
  };

  std::unique_ptr<JobStore> in, out;
  std::string in_bucket, in_prefix;
  std::vector<std::unique_ptr<Notifier>> channels;
  if (!f.local_dir.empty()) {
    in = NewLocalJobStore(f.local_dir + "/input");
    out = NewLocalJobStore(f.local_dir + "/output");
    channels.push_back(NewDirectoryNotifier(f.local_dir + "/outbox", f.mail_from, f.mail_to));
  } else {
    if (f.input.empty() || f.output.empty())
      return Fail(&log, Status::InvalidArgument("queue mode needs --input s3://bucket/prefix/ and --output s3://bucket/prefix/"));
    auto i = SplitS3(f.input, "input");
    if (!i.ok()) return Fail(&log, i.status());
    auto o = SplitS3(f.output, "output");
    if (!o.ok()) return Fail(&log, o.status());
    auto c = s3_client();
    if (!c.ok()) return Fail(&log, c.status());
    std::tie(in_bucket, in_prefix) = *i;
    in = NewS3JobStore(*c, in_bucket, in_prefix);
    out = NewS3JobStore(*c, o->first, o->second);
  }
  if (!f.smtp_url.empty()) {
    SmtpOptions so;
    so.url = f.smtp_url;
    so.from = f.mail_from;
    so.to = f.mail_to;
    so.require_tls = f.smtp_require_tls;
    Status st = LoadSmtpSecrets(f.smtp_secrets_file, &so);
    if (!st.ok()) return Fail(&log, st);
    channels.push_back(NewSmtpNotifier(so));
  }
  if (!f.sns_topic_arn.empty()) {
    SnsOptions so;
    so.topic_arn = f.sns_topic_arn;
    so.region = ResolveRegion(aws_env);
    so.endpoint_url = ConfiguredEndpointUrl(AwsService::kSns, aws_env);  // "": the topic region's
    channels.push_back(NewSnsNotifier(so, credentials, transport));
  }
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
