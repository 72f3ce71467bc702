"""The loader across real processes: `dualign data peek` under mpirun -np 2 reads the same HDF5 file from two
ranks; the union of their shards is the np=1 global batch, and cursors carry over np=2 -> np=1 -> np=2."""
import json
import os
import shutil
import subprocess
import tempfile

BIN = os.path.join(os.environ["DUALIGN_BIN"], "dualign")
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]


def peek(path, np_, batches, cursor=(0, 0)):
    cmd = [BIN, "data", "peek", path, "--global-batch", "8", "--batches", str(batches), "--seed", "5",
           "--epoch", str(cursor[0]), "--position", str(cursor[1])]
    if np_ > 1:
        cmd = MPIRUN + ["-np", str(np_)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    assert all(l["world_size"] == np_ for l in lines), lines[:2]
    # Reassemble global batches: rank slices in rank order.
    batches_out = []
    for i in range(batches):
        per_rank = {r: [l for l in lines if l["rank"] == r] for r in range(np_)}
        batches_out.append(sum((per_rank[r][i]["indices"] for r in range(np_)), []))
        cursors = {tuple(per_rank[r][i]["next_cursor"]) for r in range(np_)}
        assert len(cursors) == 1, cursors
    return batches_out, list(cursors)[0] if batches else cursor


def main():
    tmp = tempfile.mkdtemp(prefix="loader-mpi-")
    path = os.path.join(tmp, "points.h5")
    subprocess.run([BIN, "data", "gmm", "--out", path, "-n", "60"], check=True, capture_output=True)
    reference, _ = peek(path, 1, 20)  # 7 batches per epoch: crosses two epoch boundaries
    two, cursor = peek(path, 2, 9)
    assert two == reference[:9], (two, reference[:9])
    one, cursor = peek(path, 1, 6, cursor)
    assert one == reference[9:15]
    two_again, _ = peek(path, 2, 5, cursor)
    assert two_again == reference[15:20]
    shutil.rmtree(tmp)
    print("loader order across np=1/2 and resumes OK; cursor after np=2 ->", cursor)


if __name__ == "__main__":
    main()
