// The parts of a pipeline built from a PipelineConfig the same way by `serve`
// and the Lambda runtime: the notification channels (SMTP, SNS) and the links
// success emails give (presigned S3 GETs, and when their credentials expire).
//
// Threading: called once while a worker starts; what it sets up is thread-safe
// as notifier.h and PipelineOptions require.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "cloudmerge/aws/credentials.h"
#include "cloudmerge/aws/http.h"
#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/pipeline/notify/notifier.h"
#include "cloudmerge/pipeline/pipeline_config.h"

namespace cloudmerge {

// Appends the SMTP channel (c.smtp_url; user and password from the config,
// then c.smtp_secrets_file's user=... and password=... lines) and the SNS
// channel (c.sns_topic_arn; region and endpoint as the AWS CLI finds them).
Status AddNotifierChannels(const PipelineConfig& c, const AwsEnvironment& aws_env,
                           std::shared_ptr<CredentialsProvider> credentials, std::shared_ptr<HttpTransport> transport,
                           std::vector<std::unique_ptr<Notifier>>* channels);

// Sets o->share_link (s3:// URIs as presigned GETs by the client `s3` makes on
// first use; other URIs as they are) and o->signing_credentials_expiry (from
// `credentials`, the chain the client signs with). `s3` must outlive the runs.
void LinkS3Objects(std::function<Result<std::shared_ptr<S3Client>>()> s3,
                   std::shared_ptr<CredentialsProvider> credentials, PipelineOptions* o);

}  // namespace cloudmerge
