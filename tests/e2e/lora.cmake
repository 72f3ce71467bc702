# LoRA end to end: Diffusion-DPO with model.lora under mpirun on a tiny random SD UNet, the diffusers export loaded
# by load_lora_weights and compared with dualign's own forward (score_model_probe), sizes against full fine-tuning.
add_executable(score_model_probe ${CMAKE_CURRENT_LIST_DIR}/score_model_probe.cpp)
target_link_libraries(score_model_probe PRIVATE dualign_models)
target_precompile_headers(score_model_probe REUSE_FROM dualign_torch_pch)
dualign_add_py_test(e2e_lora SCRIPT ${CMAKE_CURRENT_LIST_DIR}/lora_test.py ARGS $<TARGET_FILE:score_model_probe>
                    LABELS e2e TIMEOUT 900 PROCESSORS 2)
