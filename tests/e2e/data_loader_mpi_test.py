"""The loader across real processes: `dualign data peek` under mpirun -np 2 reads the same HDF5 file from two
ranks; the union of their shards is the np=1 global batch, and cursors carry over np=2 -> np=1 -> np=2."""
import json
import os
import shutil

from e2e_util import dualign, temp_dir


def peek(path, np_, batches, cursor=(0, 0)):
    args = ["data", "peek", path, "--global-batch", "8", "--batches", batches, "--seed", "5",
            "--epoch", cursor[0], "--position", cursor[1]]
    out = dualign(args, np_=np_ if np_ > 1 else None)
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
    tmp = str(temp_dir("loader-mpi-"))
    path = os.path.join(tmp, "points.h5")
    dualign(["data", "gmm", "--out", path, "-n", "60"])
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
