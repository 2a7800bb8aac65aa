// EMR and EMR Serverless calls over AwsClient (emr_client.h).
#include "cloudmerge/aws/emr_client.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace cloudmerge {
namespace {

using nlohmann::json;

// A string member of a JSON object, "" when absent or not a string (moto sends nulls).
std::string Str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}

const json& Member(const json& j, const char* key) {
  static const json kNull;
  return j.is_object() && j.contains(key) ? j[key] : kNull;
}

AwsClient MakeClient(const ClusterApiOptions& o, const char* signing_name, AwsService which) {
  auto env = AwsEnvironment::FromProcess();
  std::string region = o.region.empty() ? ResolveRegion(env) : o.region;
  auto transport = o.transport ? o.transport : NewCurlTransport();
  return AwsClient(ResolveEndpoint(which, region, env, o.endpoint_url), region, signing_name,
                   NewDefaultCredentialsChain(env, transport), transport);
}

// One call: the JSON answer, or an error naming `what`. `target` non-empty:
// AWS JSON 1.1 with X-Amz-Target; empty: REST JSON.
Result<json> Call(const AwsClient& api, const std::string& method, const std::string& path,
                  const std::string& target, const std::string& body, const std::string& what) {
  AwsRequest req;
  req.method = method;
  req.path = path;
  req.headers = {{"content-type", target.empty() ? "application/json" : "application/x-amz-json-1.1"}};
  if (!target.empty()) req.headers.push_back({"x-amz-target", target});
  req.body = body;
  auto answer = api.Send(req);
  if (!answer.ok()) return answer.status();
  const std::string& text = answer->response.body;
  if (answer->ok()) {
    json j = json::parse(text.empty() ? "{}" : text, nullptr, false);
    if (j.is_discarded())
      return Status::IOError(fmt::format("{} at {} answered with a body that is not JSON: {}", what,
                                         api.endpoint().url(), text.substr(0, 200)));
    return j;
  }
  return Status::IOError(fmt::format("{} at {} failed: {} ({} {}). Check the IDs, the region ({}) and that {} "
                                     "is allowed to call it.", what, api.endpoint().url(), answer->error.message,
                                     answer->response.status, answer->error.code, api.region(),
                                     answer->credentials));
}

// The failure of a step, from DescribeStep's Status.FailureDetails (Reason,
// Message, LogFile), or its state-change reason (a cancelled or interrupted
// step has no failure details).
std::string StepDetail(const json& status) {
  const json& fail = Member(status, "FailureDetails");
  std::string detail = Str(fail, "Reason");
  if (!Str(fail, "Message").empty() && Str(fail, "Message") != detail)
    detail += (detail.empty() ? "" : " — ") + Str(fail, "Message");
  if (!Str(fail, "LogFile").empty()) detail += (detail.empty() ? "" : "; ") + ("log: " + Str(fail, "LogFile"));
  if (detail.empty()) {
    const json& reason = Member(status, "StateChangeReason");
    detail = Str(reason, "Message").empty() ? Str(reason, "Code") : Str(reason, "Message");
  }
  return detail;
}

std::string ApplicationPath(const std::string& application_id) {
  return "/applications/" + EncodePathSegment(application_id);
}

}  // namespace

EmrClient::EmrClient(const ClusterApiOptions& options)
    : client_(MakeClient(options, "elasticmapreduce", AwsService::kEmr)) {}

Result<std::string> EmrClient::AddStep(const std::string& cluster_id, const std::string& name,
                                       const std::vector<std::string>& args) const {
  json body = {{"JobFlowId", cluster_id},
               {"Steps", {{{"Name", name},
                           {"ActionOnFailure", "CONTINUE"},
                           {"HadoopJarStep", {{"Jar", "command-runner.jar"}, {"Args", args}}}}}}};
  auto added = Call(client_, "POST", "/", "ElasticMapReduce.AddJobFlowSteps", body.dump(), "EMR AddJobFlowSteps");
  if (!added.ok()) return added.status();
  const json& ids = Member(*added, "StepIds");
  if (ids.is_array() && !ids.empty() && ids[0].is_string() && !ids[0].get<std::string>().empty())
    return ids[0].get<std::string>();
  return Status::IOError(fmt::format("EMR AddJobFlowSteps on cluster {} answered without a step ID", cluster_id));
}

Result<ClusterRunState> EmrClient::DescribeStep(const std::string& cluster_id, const std::string& step_id) const {
  auto r = Call(client_, "POST", "/", "ElasticMapReduce.DescribeStep",
                json{{"ClusterId", cluster_id}, {"StepId", step_id}}.dump(), "EMR DescribeStep");
  if (!r.ok()) return r.status();
  const json& status = Member(Member(*r, "Step"), "Status");
  return ClusterRunState{Str(status, "State"), StepDetail(status)};
}

EmrServerlessClient::EmrServerlessClient(const ClusterApiOptions& options)
    : client_(MakeClient(options, "emr-serverless", AwsService::kEmrServerless)) {}

Result<std::string> EmrServerlessClient::StartJobRun(const JobRunRequest& q) const {
  json body = {{"clientToken", q.client_token},
               {"executionRoleArn", q.execution_role_arn},
               {"name", q.name},
               {"jobDriver", {{"sparkSubmit", {{"entryPoint", q.entry_point},
                                               {"entryPointArguments", q.arguments},
                                               {"sparkSubmitParameters", q.spark_submit_parameters}}}}}};
  auto started = Call(client_, "POST", ApplicationPath(q.application_id) + "/jobruns", "", body.dump(),
                      "EMR Serverless StartJobRun");
  if (!started.ok()) return started.status();
  std::string run_id = Str(*started, "jobRunId");
  if (run_id.empty())
    return Status::IOError(fmt::format("EMR Serverless StartJobRun on application {} answered without a jobRunId",
                                       q.application_id));
  return run_id;
}

Result<ClusterRunState> EmrServerlessClient::GetJobRun(const std::string& application_id,
                                                       const std::string& run_id) const {
  auto r = Call(client_, "GET", ApplicationPath(application_id) + "/jobruns/" + EncodePathSegment(run_id), "", "",
                "EMR Serverless GetJobRun");
  if (!r.ok()) return r.status();
  const json& run = Member(*r, "jobRun");
  return ClusterRunState{Str(run, "state"), Str(run, "stateDetails")};
}

}  // namespace cloudmerge
