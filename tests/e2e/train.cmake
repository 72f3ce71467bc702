dualign_add_py_test(e2e_cli_train SCRIPT ${CMAKE_CURRENT_LIST_DIR}/cli_train_test.py LABELS e2e TIMEOUT 900 PROCESSORS 2)
dualign_add_py_test(e2e_resume SCRIPT ${CMAKE_CURRENT_LIST_DIR}/resume_test.py LABELS e2e TIMEOUT 900 PROCESSORS 2)
