// Progress: what a long merge shows while it runs. The engine announces phases
// (read y, partition x, join, merge runs, ...) with their totals and adds work
// done from any worker thread; a background thread renders it every interval:
//   - kBar   (stderr is a terminal): one live line per phase, redrawn in place:
//            "join        [#######.....]  62%  1.2 Grows 3.4 GB  85 Mrows/s  ETA 12s"
//   - kLines (not a terminal): one JSON object per line, every interval:
//            {"progress":"join","rows":..,"bytes":..,"total_bytes":..,"fraction":0.62,
//             "rows_per_s":..,"eta_s":12,"elapsed_s":3.1}
//   - kNone: nothing.
// kAuto picks kBar for a terminal and kLines otherwise.
//
// Thread safety: Add may be called from any thread (relaxed atomics, no locks);
// BeginPhase/EndPhase from the engine's control thread only.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string_view>

namespace cloudmerge {

class Progress {
 public:
  enum class Style { kAuto, kBar, kLines, kNone };
  // A Progress writing to `out` (normally stderr) every `interval_seconds`.
  static std::unique_ptr<Progress> Create(Style style, FILE* out, double interval_seconds);
  virtual ~Progress() = default;
  // Totals may be 0 when unknown (then no fraction or ETA is shown).
  virtual void BeginPhase(std::string_view name, uint64_t total_bytes, uint64_t total_rows) = 0;
  virtual void Add(uint64_t rows, uint64_t bytes) = 0;
  virtual void EndPhase() = 0;
};

}  // namespace cloudmerge
