# Parity of the SD toolchain (label parity): AutoencoderKL, the CLIP image tower and the reward models against
# diffusers, transformers, open_clip and the constrained-alignment reference formulas, on tiny random models.
set(_sdtools_fixtures ${CMAKE_BINARY_DIR}/parity_fixtures_sdtools)  # a sibling: the UNet fixture script replaces parity_fixtures/
add_test(NAME parity_make_sdtools_fixtures
         COMMAND ${DUALIGN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/make_sdtools_fixtures.py ${_sdtools_fixtures})
set_tests_properties(parity_make_sdtools_fixtures PROPERTIES LABELS parity TIMEOUT 600 FIXTURES_SETUP sdtools_fixtures
                     ENVIRONMENT "OMP_NUM_THREADS=1;DUALIGN_THREADS=1;DUALIGN_SOURCE_DIR=${CMAKE_SOURCE_DIR}")

add_executable(test_parity_sdtools ${CMAKE_CURRENT_SOURCE_DIR}/sdtools_parity_test.cpp)
target_link_libraries(test_parity_sdtools PRIVATE dualign_rewards dualign_models dualign_config GTest::gtest GTest::gtest_main)
target_precompile_headers(test_parity_sdtools REUSE_FROM dualign_torch_pch)
set_target_properties(test_parity_sdtools PROPERTIES CROSSCOMPILING_EMULATOR
                      "env;DUALIGN_PARITY_DIR=${_sdtools_fixtures};OMP_NUM_THREADS=1;DUALIGN_THREADS=1")
gtest_discover_tests(test_parity_sdtools PROPERTIES LABELS parity TIMEOUT 300 FIXTURES_REQUIRED sdtools_fixtures
                     DISCOVERY_TIMEOUT 60)
