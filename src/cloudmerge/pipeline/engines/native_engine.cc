// The native engine behind the Engine interface: RunMerge in this process.
#include <algorithm>
#include <thread>

#include "cloudmerge/base/memory_info.h"
#include "cloudmerge/pipeline/engines/engine.h"
#include "cloudmerge/report/merge_report.h"

namespace cloudmerge {
namespace {

class NativeEngine : public Engine {
 public:
  NativeEngine(Env* env, NativeEngineOptions o) : env_(env), o_(std::move(o)) {}
  EngineKind kind() const override { return EngineKind::kNative; }

  Status Run(const EngineJob& job, EngineResult* result) override {
    MergeOptions mo;
    mo.x_path = job.x_uri;
    mo.y_path = job.y_uri;
    mo.out_path = job.out_uri;
    mo.x_key = job.spec.x_key;
    mo.y_key = job.spec.y_key;
    mo.any_order = job.spec.any_order;
    mo.pandas = job.spec.pandas;
    // Several runs at once (serve --workers) share the memory limit and the cores evenly.
    unsigned runs = std::max(1u, o_.concurrent_runs);
    mo.threads = o_.threads ? o_.threads : std::max(1u, std::thread::hardware_concurrency() / runs);
    mo.memory_limit = runs > 1 ? (o_.memory_limit ? o_.memory_limit : DefaultMemoryLimit()) / runs : o_.memory_limit;
    mo.temp_dir = o_.temp_dir;
    // The report shows matched and hottest keys: in memory that costs a
    // counter per y row, which a pipeline run (always reported) pays.
    mo.key_stats = true;
    CM_RETURN_IF_ERROR(RunMerge(env_, mo, &result->stats));
    // The engine's report as `cloudmerge merge --report` writes it. Parsed
    // without exceptions: a report that cannot be parsed (it never should)
    // costs the page its keys section, not the run.
    auto stats = nlohmann::json::parse(MergeReportJson(result->stats, mo), nullptr, false);
    if (stats.is_object()) result->report["engine_stats"] = std::move(stats);
    return Status::OK();
  }

 private:
  Env* env_;
  NativeEngineOptions o_;
};

}  // namespace

std::unique_ptr<Engine> NewNativeEngine(Env* env, NativeEngineOptions options) {
  return std::make_unique<NativeEngine>(env, std::move(options));
}

}  // namespace cloudmerge
