// The Lambda entry point: the same binary, run as `bootstrap` (or as
// `cloudmerge lambda`), is an AWS Lambda custom runtime. Configuration comes
// from the function's environment, read by PipelineConfigBuilder::FromEnvironment
// (pipeline_config.h; the variables are listed in docs/configuration.md:
// CLOUDMERGE_OUTPUT is required), plus the usual AWS_* variables Lambda sets
// (credentials, region).
#pragma once

namespace cloudmerge_cli {

int RunLambda();

}  // namespace cloudmerge_cli
