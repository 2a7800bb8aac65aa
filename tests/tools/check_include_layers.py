#!/usr/bin/env python3
"""The allowed includes between the folders of src/cloudmerge/ (docs/architecture.md).

Each folder is a layer and may include only itself and the layers below it:

    base <- io <- engine <- report <- pipeline <- tools
             ^--- aws <---------------------'

The CMake libraries follow the same layers (a library links only the ones below
it), but a header-only include that runs up would still compile; this check
names the file and line. It also refuses include cycles between headers.

    check_include_layers.py [SRC_DIR]     exit 1 and one line per violation
    check_include_layers.py --self-test   proves the check catches both kinds
"""
import os
import re
import sys
import tempfile

# folder -> the folders it may include (itself included)
ALLOWED = {
    "base": {"base"},
    "io": {"base", "io"},
    "engine": {"base", "io", "engine"},
    "report": {"base", "io", "engine", "report"},
    "aws": {"base", "io", "aws"},
    "pipeline": {"base", "io", "engine", "report", "aws", "pipeline"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"cloudmerge/([^"]+)"')


def layer_of(rel):
    """'engine/merge.h' -> 'engine'; 'pipeline/notify/notifier.h' -> 'pipeline'; tools -> None."""
    head = rel.split("/", 1)[0]
    return head if head in ALLOWED else None


def scan(src):
    """Yields (path relative to src/cloudmerge or src/tools, line number, included path)."""
    for top in ("cloudmerge", "tools"):
        root = os.path.join(src, top)
        for dirpath, _, files in os.walk(root):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, os.path.join(src, "cloudmerge"))
                with open(path, encoding="utf-8", errors="replace") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if m:
                            yield rel, number, m.group(1)


def violations(src):
    problems = []
    graph = {}
    for rel, number, target in scan(src):
        here = layer_of(rel)
        there = layer_of(target)
        if not os.path.exists(os.path.join(src, "cloudmerge", target)):
            problems.append(f"src/cloudmerge/{rel}:{number}: includes cloudmerge/{target}, which does not exist")
            continue
        if there is None:
            problems.append(f"src/cloudmerge/{rel}:{number}: includes cloudmerge/{target}, outside every layer")
        elif here is not None and there not in ALLOWED[here]:
            problems.append(
                f"src/cloudmerge/{rel}:{number}: {here}/ may not include {there}/ (cloudmerge/{target}); "
                f"{here}/ may include {', '.join(sorted(ALLOWED[here]))}")
        if rel.endswith(".h"):
            graph.setdefault(rel, []).append((target, number))
    problems += cycles(graph)
    return problems


def cycles(graph):
    """Include cycles between headers, each reported once."""
    problems, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target, _ in graph.get(node, []):
            if state.get(target) == "open":
                loop = stack[stack.index(target):] + [target]
                problems.append("include cycle: " + " -> ".join(loop))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return problems


def self_test():
    """A tree with one upward include and one cycle: both must be reported."""
    with tempfile.TemporaryDirectory() as src:
        files = {
            "cloudmerge/base/a.h": '#include "cloudmerge/engine/b.h"\n',
            "cloudmerge/engine/b.h": '#include "cloudmerge/engine/c.h"\n',
            "cloudmerge/engine/c.h": '#include "cloudmerge/engine/b.h"\n',
            "cloudmerge/pipeline/d.cc": '#include "cloudmerge/engine/b.h"\n',
        }
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            with open(os.path.join(src, rel), "w") as f:
                f.write(text)
        found = violations(src)
    upward = [p for p in found if "base/ may not include engine/" in p]
    loops = [p for p in found if p.startswith("include cycle")]
    allowed_flagged = [p for p in found if "pipeline/d.cc" in p]
    if len(upward) != 1 or len(loops) != 1 or allowed_flagged:
        print("self-test failed:", found)
        return 1
    print("self-test passed: an upward include and a cycle are reported, an allowed include is not")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    src = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "src")
    problems = violations(src)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include(s) break the layering of docs/architecture.md")
        return 1
    print("includes follow the layers of docs/architecture.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
