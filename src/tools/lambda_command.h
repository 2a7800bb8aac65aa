// The Lambda entry point: the same binary, run as `bootstrap` (or as
// `cloudmerge lambda`), is an AWS Lambda custom runtime. Configuration comes
// from the function's environment:
//   CLOUDMERGE_OUTPUT        s3://bucket/prefix/ for results (required)
//   CLOUDMERGE_INPUT_PREFIX  only keys under this prefix are jobs (default: all)
//   CLOUDMERGE_SNS_TOPIC_ARN notifications by SNS (optional)
//   CLOUDMERGE_SMTP_URL, CLOUDMERGE_MAIL_FROM, CLOUDMERGE_MAIL_TO (comma-separated),
//   CLOUDMERGE_SMTP_USER, CLOUDMERGE_SMTP_PASSWORD   notifications by SMTP (optional)
//   CLOUDMERGE_LEASE_SECONDS claim lease (default 900, Lambda's longest run)
// plus the usual AWS_* variables Lambda sets (credentials, region).
#pragma once

namespace cloudmerge_cli {

int RunLambda();

}  // namespace cloudmerge_cli
