dualign_add_py_test(e2e_cli_train SCRIPT ${CMAKE_CURRENT_LIST_DIR}/cli_train_test.py LABELS e2e TIMEOUT 900 PROCESSORS 2)
dualign_add_py_test(e2e_resume SCRIPT ${CMAKE_CURRENT_LIST_DIR}/resume_test.py LABELS e2e TIMEOUT 900 PROCESSORS 2)
# Mixed precision (docs/precision.md): the non-finite policy and fp16 loss scaling, under mpirun -np 2.
dualign_add_py_test(e2e_nonfinite SCRIPT ${CMAKE_CURRENT_LIST_DIR}/nonfinite_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
dualign_add_py_test(e2e_fp16_scaler SCRIPT ${CMAKE_CURRENT_LIST_DIR}/fp16_scaler_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
dualign_add_py_test(e2e_precision_methods SCRIPT ${CMAKE_CURRENT_LIST_DIR}/precision_methods_test.py LABELS e2e TIMEOUT 600)
# train.optimizer=adafactor: DDP and ZeRO-2 runs resume bitwise across a SIGKILL; mismatched resumes are refused.
dualign_add_py_test(e2e_adafactor SCRIPT ${CMAKE_CURRENT_LIST_DIR}/adafactor_test.py LABELS e2e TIMEOUT 900 PROCESSORS 2)
