#!/usr/bin/env python3
"""The module graph of src/, derived from `#include "module/..."` lines and the CMake `target_link_libraries` of
each module's library, and the rules it must keep (docs/architecture.md):

  1. no cycle among the includes, and none among the links;
  2. a module links exactly the modules it includes: no unused link, no include reached only through another
     module's link;
  3. the graph drawn in docs/architecture.md is this graph (--check-doc).

  python tests/arch/module_graph.py                 # check rules 1-2, print the layers
  python tests/arch/module_graph.py --check-doc docs/architecture.md
  python tests/arch/module_graph.py --mermaid       # the diagram to paste between the markers in the doc
Exit status 1 names every violation (the files behind an include edge, the CMake file behind a link).
"""
import argparse
import os
import re
import sys

# Interface targets that carry third-party flags, not dualign modules.
INFRASTRUCTURE = {"torch", "torch_pch", "fmt", "nccl"}
# Generated headers (build/generated/dualign/...), not a module.
GENERATED = {"dualign"}
DOC_BEGIN, DOC_END = "<!-- module-graph:begin -->", "<!-- module-graph:end -->"


def modules(src):
    return sorted(d for d in os.listdir(src) if os.path.isfile(os.path.join(src, d, "CMakeLists.txt")))


def include_edges(src, mods):
    """{module: {dependency: [files that include it]}}"""
    edges = {m: {} for m in mods}
    pattern = re.compile(r'^\s*#\s*include\s+"([a-z_0-9]+)/')
    for m in mods:
        for root, _, files in os.walk(os.path.join(src, m)):
            for f in files:
                if not f.endswith((".h", ".cpp", ".cu", ".cuh")):
                    continue
                path = os.path.join(root, f)
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        hit = pattern.match(line)
                        if not hit or hit.group(1) in GENERATED or hit.group(1) == m:
                            continue
                        dep = hit.group(1)
                        if dep not in mods:
                            raise SystemExit(f"{path}: includes '{dep}/...', which is not a module of {src}")
                        edges[m].setdefault(dep, []).append(os.path.relpath(path, os.path.dirname(src)))
    return edges


def link_edges(src, mods):
    """{module: set of linked modules}, from target_link_libraries(<target> ...) in src/<module>/CMakeLists.txt."""
    edges = {}
    for m in mods:
        path = os.path.join(src, m, "CMakeLists.txt")
        with open(path, encoding="utf-8") as fh:
            text = re.sub(r"#[^\n]*", "", fh.read())
        target = "dualign" if m == "app" else f"dualign_{m}"
        linked = set()
        for call in re.finditer(r"target_link_libraries\(\s*(\S+)([^)]*)\)", text):
            if call.group(1) != target:
                continue
            for name in re.findall(r"\bdualign_([a-z_0-9]+)", call.group(2)):
                if name not in INFRASTRUCTURE:
                    linked.add(name)
        unknown = linked - set(mods)
        if unknown:
            raise SystemExit(f"{path}: links {sorted(unknown)}, which are not modules")
        edges[m] = linked
    return edges


def find_cycle(graph):
    """A list of nodes forming a cycle, or None."""
    state = {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == "open":
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep, stack)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [])
            if found:
                return found
    return None


def layers(graph):
    """Longest-path layer of each module: 0 for modules that depend on nothing."""
    memo = {}

    def depth(node):
        if node not in memo:
            memo[node] = 1 + max((depth(d) for d in graph[node]), default=-1)
        return memo[node]

    return {m: depth(m) for m in graph}


def mermaid(graph):
    level = layers(graph)
    lines = ["```mermaid", "flowchart BT"]
    for n in range(max(level.values()) + 1):
        names = sorted(m for m in graph if level[m] == n)
        lines.append(f"  subgraph L{n}[\"layer {n}\"]")
        lines.append("    direction LR")
        lines += [f"    {m}" for m in names]
        lines.append("  end")
    for m in sorted(graph):
        for dep in sorted(graph[m]):
            lines.append(f"  {m} --> {dep}")
    lines.append("```")
    return "\n".join(lines)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default=os.path.join(here, "..", "..", "src"))
    parser.add_argument("--check-doc", metavar="MARKDOWN", help="also check the diagram between the markers")
    parser.add_argument("--mermaid", action="store_true", help="print the diagram and exit")
    args = parser.parse_args()
    src = os.path.abspath(args.src)
    mods = modules(src)
    includes = include_edges(src, mods)
    links = link_edges(src, mods)
    include_graph = {m: set(includes[m]) for m in mods}
    if args.mermaid:
        print(mermaid(include_graph))
        return 0

    problems = []
    cycle = find_cycle(include_graph)
    if cycle:
        steps = [f"{a} -> {b} ({includes[a][b][0]})" for a, b in zip(cycle, cycle[1:])]
        problems.append("include cycle: " + "; ".join(steps))
    cycle = find_cycle(links)
    if cycle:
        problems.append("link cycle: " + " -> ".join(cycle))
    for m in mods:
        cmake = f"src/{m}/CMakeLists.txt"
        for dep in sorted(links[m] - include_graph[m]):
            problems.append(f"{cmake}: links dualign_{dep}, but no file of src/{m} includes {dep}/")
        for dep in sorted(include_graph[m] - links[m]):
            problems.append(f"{cmake}: does not link dualign_{dep}, which {includes[m][dep][0]} includes")
    if args.check_doc:
        with open(args.check_doc, encoding="utf-8") as fh:
            doc = fh.read()
        if DOC_BEGIN not in doc or DOC_END not in doc:
            problems.append(f"{args.check_doc}: no {DOC_BEGIN} ... {DOC_END} block")
        else:
            drawn = doc.split(DOC_BEGIN)[1].split(DOC_END)[0].strip()
            if drawn != mermaid(include_graph):
                problems.append(f"{args.check_doc}: the drawn module graph is stale; replace the block with the "
                                f"output of `python tests/arch/module_graph.py --mermaid`")

    level = layers(include_graph) if not find_cycle(include_graph) else {}
    for n in sorted(set(level.values())):
        print(f"layer {n}: " + ", ".join(sorted(m for m in mods if level[m] == n)))
    for p in problems:
        print("error: " + p, file=sys.stderr)
    print(f"{len(mods)} modules, {sum(len(v) for v in include_graph.values())} dependencies, "
          f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
