// EmrClient and EmrServerlessClient: the calls the cluster engines make
// (pipeline/engines/spark_engine.h), through AwsClient (the service's
// endpoint from aws/endpoints.h, SigV4, the one retry policy):
//   EMR (AWS JSON 1.1, "elasticmapreduce"): AddJobFlowSteps, DescribeStep;
//   EMR Serverless (REST JSON, "emr-serverless"): StartJobRun, GetJobRun.
// Errors are Status values naming the call, the endpoint, the service's
// words, the region and the credentials used. What to submit (the
// spark-submit arguments) and how long to wait stay with the engine.
//
// Thread safety: immutable after construction; calls may run on many threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cloudmerge/aws/aws_client.h"

namespace cloudmerge {

// A step's or a job run's state ("RUNNING", "COMPLETED", "SUCCESS", ...) and,
// for a failed one, why (the failure details or the state-change reason).
struct ClusterRunState {
  std::string state, detail;
};

// Region and endpoint: "" resolves them as the AWS SDKs do (ResolveRegion;
// --emr-endpoint-url, AWS_ENDPOINT_URL_EMR[_SERVERLESS], AWS_ENDPOINT_URL, the
// profile). `transport` null: curl.
struct ClusterApiOptions {
  std::string region, endpoint_url;
  std::shared_ptr<HttpTransport> transport;
};

class EmrClient {
 public:
  explicit EmrClient(const ClusterApiOptions& options);
  // Adds one step running `args` with command-runner.jar; returns its step ID.
  Result<std::string> AddStep(const std::string& cluster_id, const std::string& name,
                              const std::vector<std::string>& args) const;
  Result<ClusterRunState> DescribeStep(const std::string& cluster_id, const std::string& step_id) const;
  const AwsClient& client() const { return client_; }

 private:
  AwsClient client_;
};

struct JobRunRequest {
  std::string application_id, execution_role_arn, name, client_token;
  std::string entry_point;  // s3:// URI of the script
  std::vector<std::string> arguments;
  std::string spark_submit_parameters;  // "--conf k=v --conf ..."
};

class EmrServerlessClient {
 public:
  explicit EmrServerlessClient(const ClusterApiOptions& options);
  Result<std::string> StartJobRun(const JobRunRequest& request) const;  // the job run ID
  Result<ClusterRunState> GetJobRun(const std::string& application_id, const std::string& run_id) const;
  const AwsClient& client() const { return client_; }

 private:
  AwsClient client_;
};

}  // namespace cloudmerge
