"""The input as work units, and the row-level decisions (ties, held-out split) that never depend on how the
work is spread: a unit is rows [start, start + size) of one parquet file, named after the file and the start row,
so a unit's output files have the same names and contents whatever --shard-count and --workers are."""
import hashlib
import os
from dataclasses import dataclass

import pyarrow.parquet as pq

COLUMNS = ["caption", "jpg_0", "jpg_1", "label_0"]


@dataclass(frozen=True)
class Unit:
    path: str    # parquet file
    start: int   # first row
    stop: int    # one past the last row

    @property
    def name(self):
        stem = os.path.splitext(os.path.basename(self.path))[0]
        return f"{stem}-{self.start:09d}"


def plan_units(paths, rows_per_unit, max_rows=0):
    """Every unit of the input in a fixed order (files as given, rows ascending); max_rows caps the rows per file."""
    units = []
    for path in paths:
        n = pq.ParquetFile(path).metadata.num_rows
        if max_rows:
            n = min(n, max_rows)
        units += [Unit(path, s, min(s + rows_per_unit, n)) for s in range(0, n, rows_per_unit)]
    return units


def my_units(units, shard_index, shard_count):
    """This task's units of a Slurm array (round robin: neighbouring units go to different tasks)."""
    if not 0 <= shard_index < shard_count:
        raise SystemExit(f"error: --shard-index {shard_index} must lie in [0, --shard-count {shard_count})")
    return units[shard_index::shard_count]


def read_unit(unit, columns, batch_size=64):
    """The unit's rows as dicts, streamed (image columns are large): only the row groups that overlap it are read."""
    file = pq.ParquetFile(unit.path)
    missing = [c for c in columns if c not in file.schema_arrow.names]
    if missing:
        raise SystemExit(f"error: {unit.path}: no column(s) {missing} (columns: {file.schema_arrow.names})")
    groups, first, group_start = [], 0, None
    for g in range(file.metadata.num_row_groups):
        n = file.metadata.row_group(g).num_rows
        if first < unit.stop and first + n > unit.start:
            groups.append(g)
            group_start = first if group_start is None else group_start
        first += n
    row = group_start or 0
    for batch in file.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns):
        for r in batch.to_pylist():
            if unit.start <= row < unit.stop:
                yield r
            row += 1
        if row >= unit.stop:
            return


def is_tie(label_0):
    """The official script keeps only label_0 in (0, 1): 0.5 (and anything else) is a split decision."""
    return float(label_0) not in (0.0, 1.0)


def heldout(caption, fraction):
    """Deterministic split by caption: the first 8 bytes of SHA-256(caption) as a fraction of 2^64. Every pair of
    a caption lands in the same split, on any machine, in any order."""
    if fraction <= 0:
        return False
    h = int.from_bytes(hashlib.sha256(caption.encode("utf-8")).digest()[:8], "big")
    return h / 2.0 ** 64 < fraction
