# data_tools (report, prompt encoding, PickScore) and the Python peer of the DPO step benchmark, on synthetic run
# dirs and tiny random models (no downloads).
dualign_add_py_test(e2e_tools SCRIPT ${CMAKE_CURRENT_LIST_DIR}/tools_test.py LABELS e2e TIMEOUT 300)
