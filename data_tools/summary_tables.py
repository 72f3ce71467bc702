"""Markdown tables from the summary JSON files the issue-7 launch scripts write (DDO vs Diffusion-DPO, constrained
alignment, AND / OR composition, fairness). The files differ in shape, so the rendering is generic:

  scalars of an object          -> one two-column table (key | value)
  a list of objects             -> one table, a row per object, the union of their scalar keys as columns
  an object whose values are objects -> one table, a row per key (e.g. per run: constrained / equal weights)
  anything nested deeper        -> its own heading, recursively

Lists of numbers (curves per iteration, λ per step) print as their first/last values and length; the full series
stay in the JSON, and the launch scripts draw their own plots next to it.
"""
import json
import math
import os


def fmt(x):
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
            return f"{x:.3g}"
        return f"{x:.4g}"
    if isinstance(x, list) and all(isinstance(v, (int, float)) for v in x):
        if len(x) <= 6:
            return "[" + ", ".join(fmt(v) for v in x) + "]"
        return f"{fmt(x[0])} → {fmt(x[-1])} ({len(x)} values)"
    return str(x)


def is_scalar(v):
    return isinstance(v, (int, float, str, bool)) or v is None or (
        isinstance(v, list) and all(isinstance(e, (int, float)) for e in v))


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render(obj, title, level=3):
    """Markdown for one JSON value under a heading."""
    out = [f"{'#' * level} {title}\n"]
    if isinstance(obj, dict):
        scalars = {k: v for k, v in obj.items() if is_scalar(v)}
        if scalars:
            out.append(table(["key", "value"], [[k, v] for k, v in scalars.items()]))
        nested = {k: v for k, v in obj.items() if not is_scalar(v)}
        dict_rows = {k: v for k, v in nested.items() if isinstance(v, dict) and all(is_scalar(e) for e in v.values())}
        if len(dict_rows) >= 2:  # sibling objects of scalars: one table, a row each
            cols = list(dict.fromkeys(c for v in dict_rows.values() for c in v))
            out.append(table([""] + cols, [[k] + [v.get(c, "") for c in cols] for k, v in dict_rows.items()]))
            nested = {k: v for k, v in nested.items() if k not in dict_rows}
        for k, v in nested.items():
            out.append(render(v, k, min(level + 1, 6)))
    elif isinstance(obj, list) and obj and all(isinstance(e, dict) for e in obj):
        cols = list(dict.fromkeys(c for e in obj for c, v in e.items() if is_scalar(v)))
        out.append(table(cols, [[e.get(c, "") for c in cols] for e in obj]))
    else:
        out.append(fmt(obj) + "\n")
    return "\n".join(out)


def summaries_markdown(paths):
    """One section per summary file, titled by the file's parent directory and name."""
    parts = ["## Constrained methods and composition (summary files)\n"]
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        title = os.path.join(os.path.basename(os.path.dirname(os.path.abspath(path))), os.path.basename(path))
        parts.append(render(data, title))
    return "\n".join(parts)
