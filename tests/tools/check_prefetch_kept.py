#!/usr/bin/env python3
"""The join's hot loops carry their prefetch instructions in the built binary.

GCC 12 deleted every bucket prefetch made through SlotArray::Prefetch: it found
the one-statement prefetch function pure and dropped the calls to it, so the
in-memory build and probe, the out-of-core partition build and the cluster join
task waited on each bucket in turn (base/prefetch.h). Nothing in the output shows
that; only the machine code does. This disassembles the binary (objdump) and
requires, for each hot loop, at least one prefetch instruction in the functions
it compiles to. Inlining decides those names, so each loop lists the functions
it may land in; an optimised, unsanitised build only (tests/CMakeLists.txt).

Run: python3 tests/tools/check_prefetch_kept.py BINARY
"""
import re
import subprocess
import sys

# loop -> (functions it may compile to, functions excluded). Exclusions keep the
# loops' other prefetches out: ProbeBatch's Flush prefetches rows and texts,
# which survived; what went missing were the bucket prefetches around it.
LOOPS = {
    "in-memory build (bucket prefetch before insert)": (r"in_memory::Build\(|InsertLastToFirst<.*in_memory::Build", None),
    "in-memory probe (bucket prefetch as a row joins its batch)":
        (r"in_memory::.*(ChunkProber|ProbeSegment)", r"Flush"),
    "out-of-core partition build": (r"ooc::.*BuildTable::Build|InsertLastToFirst<.*ooc::", None),
    "out-of-core probe": (r"ooc::.*ProbeThrough", r"ProbeBatch<"),
    "cluster join task build": (r"BuildChains", None),
    # The next line of the block a record went to, for writing (partition.cc, PartitionBuffers::Append).
    "out-of-core partition scan (block line prefetch)": (r"ooc::.*PartitionSegment", None),
    "out-of-core re-partition (block line prefetch)": (r"ooc::Repartition", None),
}
PREFETCH = re.compile(r"^\s*[0-9a-f]+:\s+(prefetch\w*|prfm)\b")
FUNCTION = re.compile(r"^[0-9a-f]+ <(.*)>:$")


def prefetches_by_function(binary):
    out = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", binary], check=True, capture_output=True,
                         text=True).stdout
    counts, name = {}, None
    for line in out.splitlines():
        m = FUNCTION.match(line)
        if m:
            name = m.group(1)
            counts.setdefault(name, 0)
        elif name and PREFETCH.match(line):
            counts[name] += 1
    return counts


def main():
    counts = prefetches_by_function(sys.argv[1])
    problems = []
    for loop, (include, exclude) in LOOPS.items():
        names = [n for n in counts if re.search(include, n) and not (exclude and re.search(exclude, n))]
        if not names:
            problems.append(f"{loop}: no function matches /{include}/ (renamed? update LOOPS)")
        elif sum(counts[n] for n in names) == 0:
            problems.append(f"{loop}: no prefetch instruction in {len(names)} function(s), e.g. {names[0][:160]}")
    for p in problems:
        print(p)
    if not problems:
        print(f"prefetches kept in all {len(LOOPS)} hot loops")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
