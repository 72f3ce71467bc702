# data_tools/evaluation (base-vs-tuned protocol) on synthetic scores and tiny random models (no downloads):
# win-rate / mean-difference bootstrap CIs against closed forms, every scorer against its formula on the same weights,
# the prompt-set readers, and evaluate_samples.py end to end (report.md, report.json, grid PNG).
dualign_add_py_test(e2e_evaluation_winrate SCRIPT ${CMAKE_CURRENT_LIST_DIR}/evaluation_winrate_test.py LABELS e2e TIMEOUT 300)
dualign_add_py_test(e2e_evaluation_scorers SCRIPT ${CMAKE_CURRENT_LIST_DIR}/evaluation_scorers_test.py LABELS e2e TIMEOUT 300)
dualign_add_py_test(e2e_evaluation_prompts SCRIPT ${CMAKE_CURRENT_LIST_DIR}/evaluation_prompts_test.py LABELS e2e TIMEOUT 300)
dualign_add_py_test(e2e_evaluation_cli SCRIPT ${CMAKE_CURRENT_LIST_DIR}/evaluation_cli_test.py LABELS e2e TIMEOUT 300)
# `dualign sample` from a tiny diffusers pipeline at np=1 and np=2 (same latents), against StableDiffusionPipeline
# (1e-4), class-conditional guidance after training with data.label_dropout, one PNG per image.
dualign_add_py_test(e2e_sample SCRIPT ${CMAKE_CURRENT_LIST_DIR}/sample_test.py LABELS e2e TIMEOUT 900 PROCESSORS 2)
