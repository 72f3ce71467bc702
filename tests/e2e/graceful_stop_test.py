"""Preemption-safe training under mpirun -np 2: a stop signal reaches the ranks mid-run, every rank stops after the
same step with a checkpoint and exits 75 within 30 s, and rerunning the command continues bitwise (final parameters
equal an uninterrupted run's).
  - SIGTERM to one rank only (as a scheduler killing one task): the ranks' vote spreads it (DDP).
  - SIGINT to the launcher's process group (a terminal's Ctrl-C) through launch/launchers/local.sh, which passes
    it to the ranks as SIGUSR1 (ZeRO-2: every rank also writes its optimizer shard of that step).
  - SIGUSR1 to launch/launchers/slurm.sbatch (Slurm's warning before the time limit), with stand-ins for srun and
    scontrol: the job requeues itself, and the requeued script resumes."""
import os
import pathlib
import signal
import subprocess
import time
import unittest

import numpy as np

from e2e_util import BIN, MPIRUN, SRC, checkpoint_arrays, env, metrics, temp_dir

# The signal must land between SIGNAL_AFTER and STEPS. At 300 steps a ZeRO-2 run took about a second, and under
# load the test sometimes saw step 40 in metrics.jsonl only as the run ended (it then exited 0, not 75); at 1500
# steps (3 s) it still did once with a sanitizer build running beside CI. 5000 steps leave about 10 s.
STEPS = 5000
SIGNAL_AFTER = 40  # steps logged before the signal is sent
LOG_EVERY = 5
EXIT_STOPPED = 75  # src/util/stop_signal.h: kExitStoppedWithCheckpoint


def train_args(run_dir, extra=()):
    return ["train", "experiment=gmm_sft", f"train.steps={STEPS}", "train.checkpoint_every=100000",
            "train.eval.num_samples=0", "run.progress=false", f"run.log_every={LOG_EVERY}", f"run.dir={run_dir}", *extra]


def children(pid):
    """Direct children of `pid` (from /proc)."""
    out = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def rank_pids(launcher_pid):
    """The dualign processes below the launcher (mpirun directly, or local.sh -> mpirun)."""
    found, todo = [], [launcher_pid]
    while todo:
        pid = todo.pop()
        for c in children(pid):
            try:
                name = pathlib.Path(f"/proc/{c}/comm").read_text().strip()
            except OSError:
                continue
            (found if name == "dualign" else todo).append(c)
    return found


def logged_steps(run_dir):
    try:
        return max((r["step"] for r in metrics(run_dir, having="train/loss")), default=0)
    except (FileNotFoundError, ValueError):
        return 0


def final_model(run_dir):
    return checkpoint_arrays(run_dir, STEPS)


class GracefulStop(unittest.TestCase):
    launch_env = {}

    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir()

    def run_to_end(self, cmd, name):
        p = subprocess.run(cmd, cwd=SRC, env=env(**self.launch_env), capture_output=True, text=True, timeout=600)
        self.assertEqual(p.returncode, 0, f"{name}: {p.stdout[-3000:]}{p.stderr[-3000:]}")
        return p

    def interrupt(self, cmd, run_dir, send):
        """Starts cmd in its own session, waits until SIGNAL_AFTER steps are logged, calls send(proc, ranks),
        and returns (exit code, seconds from the signal to the exit, output)."""
        log = open(self.tmp / f"{run_dir.name}.out", "w+")
        proc = subprocess.Popen(cmd, cwd=SRC, env=env(**self.launch_env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 300
        while logged_steps(run_dir) < SIGNAL_AFTER:
            self.assertIsNone(proc.poll(), "the run ended before it was interrupted")
            self.assertLess(time.time(), deadline, "the run did not start")
            time.sleep(0.05)
        ranks = rank_pids(proc.pid)
        self.assertEqual(len(ranks), 2, f"expected 2 dualign ranks below pid {proc.pid}, found {ranks}")
        t0 = time.time()
        send(proc, ranks)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            self.fail("the ranks did not stop within 30 s")
        seconds = time.time() - t0
        log.seek(0)
        out = log.read()
        log.close()
        return rc, seconds, out

    def check_stopped(self, run_dir, rc, seconds, out, shards):
        self.assertEqual(rc, EXIT_STOPPED, out[-4000:])
        self.assertLess(seconds, 30)
        stops = set()
        for rank in (0, 1):
            text = (run_dir / "logs" / f"rank{rank}.log").read_text()
            found = [line.split("stopped after step ")[1].split()[0] for line in text.splitlines()
                     if "stopped after step " in line]
            self.assertEqual(len(found), 1, f"rank {rank} log:\n{text[-2000:]}")
            stops.add(int(found[0]))
        self.assertEqual(len(stops), 1, f"ranks stopped after different steps: {stops}")
        step = stops.pop()
        self.assertGreaterEqual(step, SIGNAL_AFTER)
        self.assertLess(step, STEPS, "the stop came too late to test anything")
        self.assertEqual((run_dir / "ckpt" / "latest").read_text().strip(), f"ckpt-{step:08d}.h5")
        for rank in range(2 if shards else 0):
            self.assertTrue((run_dir / "ckpt" / f"ckpt-{step:08d}.rank{rank}-of-2.h5").exists(), f"shard of rank {rank}")
        print(f"stopped after step {step}: exit {rc} {seconds:.1f} s after the signal", flush=True)
        return step

    def check_resumes_bitwise(self, straight, run_dir, cmd, step):
        p = self.run_to_end(cmd, "resume")
        self.assertIn(f"at step {step}", p.stdout + p.stderr)
        a, b = final_model(straight), final_model(run_dir)
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertTrue(np.array_equal(a[k], b[k]), k)
        # Logged losses are means over the steps since the previous record: the first record after the resume
        # covers only the steps after the stop when the stop fell between two records. Every other one is equal.
        first_after = -(-(step + 1) // LOG_EVERY) * LOG_EVERY
        ref = {r["step"]: r["train/loss"] for r in metrics(straight, having="train/loss")}
        got = {r["step"]: r["train/loss"] for r in metrics(run_dir, having="train/loss")
               if step % LOG_EVERY == 0 or r["step"] != first_after}
        self.assertEqual(len(got), STEPS // LOG_EVERY - (step % LOG_EVERY != 0))
        self.assertEqual({s: ref[s] for s in got}, got)

    def straight_ddp(self):
        """The uninterrupted DDP run (np=2), once for the tests that compare with it."""
        straight = self.tmp / "ddp_straight"
        if not (straight / "ckpt" / f"ckpt-{STEPS:08d}.h5").exists():
            self.run_to_end([*MPIRUN, "-np", "2", str(BIN), *train_args(straight)], "straight")
        return straight

    def test_sigterm_to_one_rank(self):
        straight, stopped = self.straight_ddp(), self.tmp / "ddp_sigterm"
        mpi = [*MPIRUN, "-np", "2", str(BIN)]
        rc, seconds, out = self.interrupt([*mpi, *train_args(stopped)], stopped,
                                          lambda proc, ranks: os.kill(max(ranks), signal.SIGTERM))
        step = self.check_stopped(stopped, rc, seconds, out, shards=False)
        self.check_resumes_bitwise(straight, stopped, [*mpi, *train_args(stopped)], step)

    def test_ctrl_c_to_the_process_group(self):
        straight, stopped = self.tmp / "zero2_straight", self.tmp / "zero2_sigint"
        extra = ["dist=zero2"]
        local = ["bash", "launch/launchers/local.sh", "-np", "2"]
        self.launch_env = {"DUALIGN_BIN": BIN, "MPIRUN_ARGS": "--oversubscribe"}
        self.run_to_end([*local, *train_args(straight, extra)], "straight")
        rc, seconds, out = self.interrupt([*local, *train_args(stopped, extra)], stopped,
                                          lambda proc, ranks: os.killpg(proc.pid, signal.SIGINT))
        self.assertIn("SIGINT: asking the ranks to checkpoint", out)
        step = self.check_stopped(stopped, rc, seconds, out, shards=True)
        self.check_resumes_bitwise(straight, stopped, [*local, *train_args(stopped, extra)], step)

    def test_slurm_time_limit_requeues_and_resumes(self):
        """launch/launchers/slurm.sbatch as Slurm runs it, with stand-ins for srun (mpirun -np 2) and scontrol (a
        log): SIGUSR1 to the batch shell only (--signal=B:USR1@120) → the ranks stop with a checkpoint, the script
        requeues its job; the requeued script (same job id) resumes and ends like an uninterrupted run."""
        straight, stopped = self.straight_ddp(), self.tmp / "slurm"
        fake = self.tmp / "fake_slurm"
        fake.mkdir(exist_ok=True)
        (fake / "srun").write_text("#!/bin/bash\nwhile [[ $1 == --* ]]; do shift; done\n"
                                   f"exec {' '.join(MPIRUN)} -np 2 \"$@\"\n")
        (fake / "scontrol").write_text(f"#!/bin/bash\necho \"$*\" >> {fake}/scontrol.log\n")
        for tool in ("srun", "scontrol"):
            (fake / tool).chmod(0o755)
        self.launch_env = {"PATH": f"{fake}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "e2e",
                           "SLURM_CPUS_PER_TASK": "1", "DUALIGN_ROOT": SRC, "DUALIGN_BIN": BIN, "RUN_DIR": stopped}
        script = ["bash", "launch/launchers/slurm.sbatch", *train_args(stopped)[:-1]]  # run.dir comes from RUN_DIR
        rc, seconds, out = self.interrupt(script, stopped, lambda proc, ranks: os.kill(proc.pid, signal.SIGUSR1))
        self.assertIn("SIGUSR1: asking the ranks to checkpoint", out)
        self.assertIn("requeueing job 4242", out)
        self.assertEqual((fake / "scontrol.log").read_text().split("\n")[0], "requeue 4242")
        step = self.check_stopped(stopped, rc, seconds, out, shards=False)
        self.launch_env["SLURM_RESTART_COUNT"] = "1"
        self.check_resumes_bitwise(straight, stopped, script, step)


if __name__ == "__main__":
    unittest.main(verbosity=2)
