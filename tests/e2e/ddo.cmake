# DDO end to end on the 2-D mixture: `dualign ddo experiment=gmm_ddo_*` under mpirun (np=1 vs np=2: the same DA
# trajectory), SIGKILL after a DA checkpoint and resume (the same final potential), KTO lowers its objective, the
# h-transform sampling path, and `--policy` (PF-ODE true DPO objective) at the reference = log 2; on images the
# convolutional potential (np=1 = np=2) and `--policy --divergence hutchinson` against the exact divergence.
dualign_add_py_test(e2e_ddo SCRIPT ${CMAKE_CURRENT_LIST_DIR}/ddo_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
# DDO on SD-1.5 latents at one guided prompt (experiment=sd15_ddo_light) on tiny random models under np=2.
dualign_add_py_test(e2e_sd15_ddo SCRIPT ${CMAKE_CURRENT_LIST_DIR}/sd15_ddo_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
