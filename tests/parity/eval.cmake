# Guided sampling parity with diffusers' StableDiffusionPipeline (label parity): make_sampling_fixtures.py runs
# the pipeline on a tiny random UNet for every scheduler case at 20 and 50 steps; the C++ test samples the same
# rows through eval::sample_rows and compares the latents (max abs difference <= 1e-4).
set(_sampling_fixtures ${CMAKE_BINARY_DIR}/parity_fixtures_sampling)
add_test(NAME parity_make_sampling_fixtures
         COMMAND ${DUALIGN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/make_sampling_fixtures.py ${_sampling_fixtures})
set_tests_properties(parity_make_sampling_fixtures PROPERTIES LABELS parity TIMEOUT 600
                     FIXTURES_SETUP sampling_fixtures ENVIRONMENT "OMP_NUM_THREADS=1;DUALIGN_THREADS=1")

add_executable(test_parity_sampling ${CMAKE_CURRENT_SOURCE_DIR}/sampling_parity_test.cpp)
target_link_libraries(test_parity_sampling PRIVATE dualign_eval dualign_models dualign_diffusion
                      nlohmann_json::nlohmann_json GTest::gtest GTest::gtest_main)
target_precompile_headers(test_parity_sampling REUSE_FROM dualign_torch_pch)
set_target_properties(test_parity_sampling PROPERTIES CROSSCOMPILING_EMULATOR
                      "env;DUALIGN_SAMPLING_PARITY_DIR=${_sampling_fixtures};OMP_NUM_THREADS=1;DUALIGN_THREADS=1")
gtest_discover_tests(test_parity_sampling PROPERTIES LABELS parity TIMEOUT 600 FIXTURES_REQUIRED sampling_fixtures
                     DISCOVERY_TIMEOUT 60)
