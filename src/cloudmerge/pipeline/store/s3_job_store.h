// NewS3JobStore: a JobStore over an S3 bucket and prefix (job_store.h). Its
// own header so that the JobStore interface, which the runner and the
// dashboard see, does not carry the S3 client: only the code that builds a
// store from a bucket (serve, the Lambda runtime) includes this one.
// Objects are written with single PUTs (they are small: job state, reports;
// results are written by the engine through the URI Env), markers with a
// conditional PUT (If-None-Match: *). Thread safety: as JobStore.
#pragma once

#include <memory>
#include <string>

#include "cloudmerge/aws/s3_client.h"
#include "cloudmerge/pipeline/store/job_store.h"

namespace cloudmerge {

std::unique_ptr<JobStore> NewS3JobStore(std::shared_ptr<S3Client> client, std::string bucket, std::string prefix);

}  // namespace cloudmerge
