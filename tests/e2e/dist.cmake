# `dualign doctor` and launch/gpu_check.sh without a GPU: MPI all-reduce checks over local ranks, the DPO step on
# the CPU, GPU checks skipped, exit 0.
dualign_add_py_test(e2e_doctor SCRIPT ${CMAKE_CURRENT_LIST_DIR}/doctor_test.py LABELS e2e TIMEOUT 300 PROCESSORS 2)
