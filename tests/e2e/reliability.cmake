# Reliability: graceful stop on signals, ZeRO re-sharding on resume, malformed inputs (configs, overrides, files,
# launch environments) — each must fail with a message naming the culprit, never crash or hang.
dualign_add_py_test(e2e_graceful_stop SCRIPT ${CMAKE_CURRENT_LIST_DIR}/graceful_stop_test.py LABELS e2e TIMEOUT 900
                    PROCESSORS 2)
dualign_add_py_test(e2e_zero_reshard SCRIPT ${CMAKE_CURRENT_LIST_DIR}/zero_reshard_test.py LABELS e2e TIMEOUT 900
                    PROCESSORS 2)
dualign_add_py_test(e2e_malformed_inputs SCRIPT ${CMAKE_CURRENT_LIST_DIR}/malformed_inputs_test.py LABELS e2e
                    TIMEOUT 900 PROCESSORS 1)
