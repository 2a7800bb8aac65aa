// The cluster engines (spark, emr-serverless, emr) behind the Engine
// interface: RunSparkEngine, made resumable across deliveries. Once the
// cluster accepted the job, `<run state>/cluster-submitted.json` records the
// engine and the job run or step id; a later delivery of the same run waits
// for that submission instead of submitting again. The job writes its row
// counts to `<run state>/spark-stats.json`, read for the report.
#include <fmt/format.h>

#include "cloudmerge/base/json_fields.h"
#include "cloudmerge/pipeline/engines/engine.h"
#include "cloudmerge/report/safe_text.h"

namespace cloudmerge {
namespace {

using nlohmann::json;

class ClusterEngine : public Engine {
 public:
  ClusterEngine(EngineKind kind, SparkEngineOptions o, JsonLog* log, std::string worker_id)
      : kind_(kind), o_(std::move(o)), log_(log), worker_id_(std::move(worker_id)) {
    o_.parts = false;  // the pipeline's result is one object
  }
  EngineKind kind() const override { return kind_; }

  bool Configured() const override {
    switch (kind_) {
      case EngineKind::kEmrServerless: return !o_.application_id.empty() && !o_.execution_role_arn.empty();
      case EngineKind::kEmr: return !o_.cluster_id.empty();
      default: return true;  // a local Spark needs no setting
    }
  }

  Status Run(const EngineJob& j, EngineResult* result) override {
    const char* name = EngineKindName(kind_);
    const std::string marker = j.state_prefix + "cluster-submitted.json";
    const std::string stats_key = j.state_prefix + "spark-stats.json";
    SparkJob job;
    job.engine = kind_;
    job.x = j.x_uri;
    job.y = j.y_uri;
    job.out = j.out_uri;
    job.x_key = j.spec.x_key;
    job.y_key = j.spec.y_key;
    job.ordered = !j.spec.any_order;
    job.stats_uri = j.output->Uri(stats_key);
    job.client_token = "cloudmerge-" + j.run;
    if (j.deadline_ms > 0) job.poll_deadline_ms = j.deadline_ms - 5000;
    // A submission made by an earlier delivery of this run: wait for it rather than submit again.
    auto previous = j.output->Get(marker);
    if (previous.ok()) {
      json m = json::parse(*previous, nullptr, false);
      if (JsonString(m, "engine", "") == name) job.resume_id = JsonString(m, "id", "");
    }
    job.on_submitted = [&](const std::string& id) {
      json m = {{"engine", name}, {"id", id}, {"worker", worker_id_}, {"time", NowIso8601()}};
      Status put = j.output->Put(marker, DumpJson(m), "application/json");
      if (!put.ok()) log_->Warn("job.cluster_marker_failed", j.job, put.message(), {{"run", j.run}});
      log_->Info("job.cluster_submitted", j.job, fmt::format("{} run {} submitted", name, id),
                 {{"run", j.run}, {"engine", name}, {"id", id}});
    };
    SparkOutcome outcome;
    Status st = RunSparkEngine(o_, job, &outcome);
    result->final = outcome.final;
    result->resumable = outcome.deadline_reached;
    if (outcome.deadline_reached)  // the cluster run goes on; the next delivery resumes the wait
      log_->Info("job.cluster_waiting", j.job, st.message(),
                 {{"run", j.run}, {"engine", name}, {"id", outcome.id}, {"state", outcome.state}});
    CM_RETURN_IF_ERROR(st);
    auto written = j.output->Head(j.out_key);
    if (!written.ok()) return written.status();
    if (!written->has_value())
      return Status::IOError(fmt::format("the {} run {} ended {} but wrote no result at {}. Its driver log says why "
                                         "(for EMR, the step's or job run's logs in the console).",
                                         name, outcome.id.empty() ? "(local)" : outcome.id, outcome.state, j.out_uri));
    bool rows_measured = false;
    auto text = j.output->Get(stats_key);
    if (text.ok()) {
      json s = json::parse(*text, nullptr, false);
      int64_t rows = JsonInt(s, "output_rows", -1);
      if (rows >= 0) {
        result->stats.x_rows = static_cast<uint64_t>(JsonInt(s, "x_rows", 0));
        result->stats.y_rows = static_cast<uint64_t>(JsonInt(s, "y_rows", 0));
        result->stats.output_rows = static_cast<uint64_t>(rows);
        rows_measured = true;
      }
    }
    result->report["cluster"] = {
        {"engine", name}, {"id", outcome.id}, {"state", outcome.state}, {"rows_measured", rows_measured}};
    if (!rows_measured) {
      result->report["cluster"]["note"] = "rows not measured: the Spark job wrote no statistics file";
      result->report["rows_measured"] = false;
    }
    return Status::OK();
  }

 private:
  EngineKind kind_;
  SparkEngineOptions o_;
  JsonLog* log_;
  std::string worker_id_;
};

}  // namespace

std::unique_ptr<Engine> NewClusterEngine(EngineKind kind, SparkEngineOptions options, JsonLog* log,
                                         std::string worker_id) {
  return std::make_unique<ClusterEngine>(kind, std::move(options), log, std::move(worker_id));
}

}  // namespace cloudmerge
