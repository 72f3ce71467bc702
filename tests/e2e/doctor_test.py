"""`dualign doctor` and launch/gpu_check.sh on a machine without a GPU: both say so plainly, run the MPI
all-reduce checks over the local ranks (exact results), the DPO step on the CPU (bf16 autocast within its
stated tolerance of fp32; the micro-step's host syncs reported, with the ops that made them), skip the GPU checks,
and exit 0."""
import json
import pathlib
import re
import unittest

from e2e_util import BIN, SRC, dualign, run, temp_dir

HAS_NVIDIA_DRIVER = pathlib.Path("/proc/driver/nvidia/version").exists()


@unittest.skipIf(HAS_NVIDIA_DRIVER, "this machine has an NVIDIA driver: the no-GPU path is not what runs here")
class DoctorWithoutGpu(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = temp_dir()

    def doctor(self, np_, name):
        out = self.tmp / f"{name}.json"
        p = dualign(["doctor", "--max-bytes-cpu", str(1 << 20), "--json", out], np_=np_)
        return p.stdout, json.loads(out.read_text())

    def check_report(self, stdout, report, ranks):
        self.assertIn("NO GPU visible", stdout)
        self.assertRegex(stdout, r"result: all checks passed \(\d+ skipped\); no GPU on this machine")
        self.assertEqual(report["failed"], 0)
        self.assertEqual(report["world_size"], ranks)
        self.assertEqual(report["gpus"], [])
        checks = {c["name"]: c for c in report["checks"]}
        # MPI all-reduce: 7 exact checks (sum f32/bf16 at 1, 1000, 2^20+3 elements; avg f32).
        sums = [c for c in report["checks"] if c["name"].startswith("all_reduce ")]
        self.assertEqual(len(sums), 7, sums)
        for c in sums:
            self.assertEqual(c["status"], "ok", c)
            self.assertEqual(float(re.search(r"max error (\S+)", c["detail"])[1]), 0.0, c)
        # The bf16 DPO step on the CPU against fp32 within the stated limits, and no host sync in it.
        dpo = checks["cpu bf16 autocast vs cpu fp32"]
        self.assertEqual(dpo["status"], "ok", dpo)
        loss_diff = float(re.search(r"\|Δloss\| (\S+)", dpo["detail"])[1])
        grad_rel = float(re.search(r"gradient relative L2 (\S+)", dpo["detail"])[1])
        self.assertLess(loss_diff, 2e-2)
        self.assertGreater(grad_rel, 1e-3)  # bf16 really ran: far from bitwise fp32
        self.assertLess(grad_rel, 1e-1)
        syncs = checks["host syncs in the DPO micro-step (loss + backward)"]
        self.assertEqual((syncs["status"], syncs["detail"]), ("ok", "0"), syncs)
        for name in ("GPU", "NCCL", "memory"):
            self.assertEqual(checks[name]["status"], "skip", name)
        # The bandwidth table: one row per size from 1 KiB to the 1 MiB asked for (x4 steps).
        self.assertEqual(re.findall(r"^\s+(\d+ [KM]iB)\s", stdout, re.M), ["1 KiB", "4 KiB", "16 KiB", "64 KiB",
                                                                           "256 KiB", "1 MiB"])

    def test_two_ranks_under_mpirun(self):
        stdout, report = self.doctor(2, "np2")
        self.check_report(stdout, report, 2)
        self.assertIn("worst rank", stdout)

    def test_one_process_without_mpirun(self):
        stdout, report = self.doctor(None, "np1")
        self.check_report(stdout, report, 1)
        self.assertIn("one rank: the bus bandwidth", stdout)

    def test_gpu_check_script_runs_the_doctor_on_two_ranks(self):
        p = run(["bash", SRC / "launch/gpu_check.sh", "--max-bytes-cpu", str(1 << 16)],
                env_changes={"DUALIGN_BIN": BIN, "CUDA_VISIBLE_DEVICES": None})
        self.assertIn("[gpu_check] no GPU found", p.stdout)
        self.assertIn("MPI all-reduce over 2 rank(s)", p.stdout)
        self.assertIn("result: all checks passed", p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
