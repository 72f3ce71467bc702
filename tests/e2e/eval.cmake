# `dualign sample` and `dualign eval` on two tiny GMM models: samples file format, PNGs, paired win rates,
# KL(model ‖ itself) = 0, KL between different models > 0, held-out reward, implicit accuracy, bad inputs, mpirun.
dualign_add_py_test(e2e_eval SCRIPT ${CMAKE_CURRENT_LIST_DIR}/eval_test.py LABELS e2e TIMEOUT 300 PROCESSORS 2)
