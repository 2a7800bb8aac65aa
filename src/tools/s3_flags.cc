// S3 flags and client construction for the command line.
#include "tools/s3_flags.h"

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"

namespace cloudmerge_cli {

void AddS3Options(CLI::App* cmd, S3Flags* f) {
  const char* group = "S3 (used only for s3:// paths)";
  cmd->add_option("--endpoint-url", f->endpoint_url,
                  "S3-compatible endpoint, e.g. http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3, "
                  "AWS_ENDPOINT_URL, the profile's endpoint_url, else AWS). S3 only: SQS, SNS, CloudWatch Logs and "
                  "EMR use AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL (docs/aws.md)")
      ->group(group);
  cmd->add_flag("--path-style", f->path_style, "Path-style addressing (http://host/bucket/key); default with --endpoint-url")
      ->group(group);
  cmd->add_option("--s3-part-size", f->part_size_mib, "Multipart upload part size in MiB (default: 16; AWS minimum 5)")
      ->check(CLI::Range(0.001, 5120.0))
      ->group(group);
  cmd->add_option("--s3-range-size", f->range_size_mib,
                  "Bytes per ranged GET of an input, in MiB (default: 8); an input being read holds up to "
                  "--s3-parallel + 1 of them")
      ->check(CLI::Range(0.001, 1024.0))
      ->group(group);
  cmd->add_option("--s3-parallel", f->parallel, "Ranged GETs / part uploads in flight per object (default: 4)")
      ->check(CLI::Range(1u, 64u))
      ->group(group);
  cmd->add_option("--s3-max-attempts", f->max_attempts,
                  "Attempts per S3 request before giving up (default: 6; backoff with jitter in between)")
      ->check(CLI::Range(1, 100))
      ->group(group);
}

cloudmerge::Result<std::shared_ptr<cloudmerge::S3Client>> MakeS3Client(const S3Flags& f) {
  auto aws_env = cloudmerge::AwsEnvironment::FromProcess();
  auto config = cloudmerge::S3Config::FromEnvironment(aws_env);
  if (!f.endpoint_url.empty()) {
    config.endpoint_url = f.endpoint_url;
    config.path_style = true;
  }
  if (f.path_style) config.path_style = true;
  if (f.part_size_mib > 0) config.part_size = static_cast<uint64_t>(f.part_size_mib * 1024 * 1024);
  if (f.parallel) config.parallel_requests = f.parallel;
  if (f.range_size_mib > 0) config.range_size = static_cast<uint64_t>(f.range_size_mib * 1024 * 1024);
  if (f.max_attempts) config.retry.max_attempts = f.max_attempts;
  auto transport = cloudmerge::NewCurlTransport();
  auto credentials = cloudmerge::NewDefaultCredentialsChain(aws_env, transport);
  return std::make_shared<cloudmerge::S3Client>(config, credentials, transport);
}

}  // namespace cloudmerge_cli
