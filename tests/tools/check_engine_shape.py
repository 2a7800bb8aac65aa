#!/usr/bin/env python3
"""Issue 17's shape rules for the engine, io and report layers, checked on the source:

  - the copies the issue named stay single: one Grouped(), report_html.cc without
    its own pandas rules (NA list, number parsers, TSV splitter), one loop over a
    spill file's blocks (ForEachSpillBlock), one sink choice;
  - no header in engine/ includes merge.h (merge_options.h is the ground floor);
  - no engine error names a CLI flag (Status::setting() does; the caller spells it);
  - no function in engine/ over 80 lines and no file over 600 lines without a
    reason at its top ("Size:" in its first comment); see SIZE_EXEMPT.
  - when the `duplicates` tool is on PATH: no repeat in engine/, io/ or report/
    beyond the pairs listed in ALLOWED_PAIRS (each with its reason).

Exits 1 naming every finding. Run: python3 tests/tools/check_engine_shape.py [REPO]
"""
import pathlib
import re
import shutil
import subprocess
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
SRC = ROOT / "src" / "cloudmerge"
LAYERS = ["engine", "io", "report"]
# (None: merge.cc and io/env.cc, exempt while they were being split, are small now.)
SIZE_EXEMPT = set()
# Pairs `duplicates` reports that are kept, by file pair (line numbers move).
ALLOWED_PAIRS = {
    # pandas' int64 and uint64 parsers: alike in shape, different overflow rules.
    ("engine/key_types.cc", "engine/key_types.cc"),
}

problems = []


def files(*exts):
    for layer in LAYERS:
        for p in sorted((SRC / layer).rglob("*")):
            if p.suffix in exts:
                yield p


def rel(p):
    return str(p.relative_to(SRC))


# ---- the named copies --------------------------------------------------------
grouped = [rel(p) for p in SRC.rglob("*.cc") if re.search(r"^std::string Grouped\(", p.read_text(), re.M)]
if len(grouped) != 1:
    problems.append(f"Grouped() is defined {len(grouped)} times (want 1): {grouped}")

report_html = (SRC / "report" / "report_html.cc").read_text()
for marker, what in [('"#N/A N/A"', "its own NA list"), ("strtoll", "its own integer parser"),
                     ("line.find('\\t'", "its own TSV splitter")]:
    if marker in report_html:
        problems.append(f"report/report_html.cc has {what} ({marker}): use the engine's tsv_tokenizer/key_types")

block_loops = []
for p in files(".cc", ".h"):
    text = p.read_text()
    # A whole-file loop over blocks: SpillReader::Open followed by an unbounded Next loop.
    for m in re.finditer(r"SpillReader::Open\([^;]*;[\s\S]{0,300}?for \(;;\)[\s\S]{0,80}?->Next(?:View)?\(", text):
        block_loops.append(rel(p))
if block_loops != ["io/spill_file.h"]:
    problems.append(f"loops over a whole spill file: {block_loops} (want only ForEachSpillBlock in io/spill_file.h)")

sink_choices = [rel(p) for p in files(".cc", ".h") if "std::make_unique<DirectSink>" in p.read_text()]
if sink_choices != ["engine/out_of_core/sinks.h"]:
    problems.append(f"the sink is chosen in {sink_choices} (want only NewMatchSink in engine/out_of_core/sinks.h)")

# ---- includes that run back up ---------------------------------------------
for p in (SRC / "engine").rglob("*.h"):
    if p.name != "merge.h" and '#include "cloudmerge/engine/merge.h"' in p.read_text():
        problems.append(f"{rel(p)} includes merge.h: include merge_options.h (the shared vocabulary)")

# ---- errors speak of settings, not flags -------------------------------------
FLAG_WORDS = re.compile(r"(pass|raise|with|rerun, with) --(temp-dir|memory-limit|max-output-rows|max-decompressed-size)")
for p in files(".cc"):
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if FLAG_WORDS.search(line) and not line.lstrip().startswith("//"):
            problems.append(f"{rel(p)}:{n}: an error names a CLI flag; say the setting and WithSetting(...)")

# ---- sizes ----------------------------------------------------------------------
FUNC_START = re.compile(r"^(\s{0,2})(?!if\b|for\b|while\b|switch\b|return\b|namespace\b|class\b|struct\b|enum\b|else\b)"
                        r"[\w:<>,\*&~ ]+\(.*$")
for p in files(".cc", ".h"):
    lines = p.read_text().splitlines()
    head = "\n".join(lines[:15])
    if len(lines) > 600 and "Size:" not in head and rel(p) not in SIZE_EXEMPT:
        problems.append(f"{rel(p)} has {len(lines)} lines, over 600, without a 'Size:' reason at its top")
    if p.parts[-2:][0] not in ("engine", "out_of_core") or rel(p) in SIZE_EXEMPT:
        continue
    i = 0
    while i < len(lines):
        line = lines[i]
        if FUNC_START.match(line) and not line.rstrip().endswith(";"):
            depth, started, j = 0, False, i
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                started = started or "{" in lines[j]
                if started and depth <= 0:
                    break
                if not started and lines[j].rstrip().endswith(";"):
                    break
                j += 1
            if started and j - i + 1 > 80:
                problems.append(f"{rel(p)}:{i + 1}: a function of {j - i + 1} lines (over 80): {line.strip()[:60]}")
            i = j + 1 if started else i + 1
        else:
            i += 1

# ---- duplicates (where the tool is installed) --------------------------------------
tool = shutil.which("duplicates")
if tool:
    for layer in LAYERS:
        out = subprocess.run([tool, "--repo", str(SRC / layer), "--most", "50", "--seconds", "60"],
                             capture_output=True, text=True, check=False).stdout
        for m in re.finditer(r"^D\d+ (\S+?):\d+-\d+ ~ (\S+?):\d+-\d+", out, re.M):
            pair = tuple(sorted(f"{layer}/{f}" for f in m.groups()))
            if pair not in {tuple(sorted(a)) for a in ALLOWED_PAIRS}:
                problems.append(f"duplicates: {m.group(0)} (in {layer}/): share the code, or list the pair here")
        if "incomplete:" in out:
            problems.append(f"duplicates over {layer}/ did not finish: {out.strip().splitlines()[-1]}")

for p in problems:
    print(p)
print(f"{0 if problems else 1} passed, {1 if problems else 0} failed: engine shape"
      f"{'' if tool else ' (duplicates not installed: copies checked by pattern only)'}")
sys.exit(1 if problems else 0)
