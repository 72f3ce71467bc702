# data_tools (report, prompt encoding, PickScore) and the Python peer of the DPO step benchmark, on synthetic run
# dirs and tiny random models (no downloads).
dualign_add_py_test(e2e_tools SCRIPT ${CMAKE_CURRENT_LIST_DIR}/tools_test.py LABELS e2e TIMEOUT 300)
# The SD path end to end with tiny random models: Pick-a-Pic parquet -> shards -> mpirun -np 2 dualign train
# experiment=sd15_dpo_pickapic (shrunk) -> encode_prompts.py -> dualign sample --prompts -> pickscore.py.
dualign_add_py_test(e2e_sd15_smoke SCRIPT ${CMAKE_CURRENT_LIST_DIR}/sd15_smoke_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
# The same for Stable Diffusion XL: SDXL shards, the SDXL recipe (Adafactor, time ids), guided SDXL sampling vs diffusers.
dualign_add_py_test(e2e_sdxl_smoke SCRIPT ${CMAKE_CURRENT_LIST_DIR}/sdxl_smoke_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
# `dualign plan --measure` against train/peak_tensor_mb of mpirun -np 2 runs of a 31M-parameter SDXL-style UNet.
dualign_add_py_test(e2e_plan_measured SCRIPT ${CMAKE_CURRENT_LIST_DIR}/plan_measured_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
