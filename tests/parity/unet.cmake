# Parity with diffusers (label parity): a Python fixture step builds tiny random diffusers UNets and scheduler
# trajectories (no download); the C++ tests compare dualign against them.
set(_fixtures ${CMAKE_BINARY_DIR}/parity_fixtures)
add_test(NAME parity_make_unet_fixtures
         COMMAND ${DUALIGN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/make_unet_fixtures.py ${_fixtures})
set_tests_properties(parity_make_unet_fixtures PROPERTIES LABELS parity TIMEOUT 300 FIXTURES_SETUP unet_fixtures
                     ENVIRONMENT "OMP_NUM_THREADS=1;DUALIGN_THREADS=1")

add_executable(test_parity_unet ${CMAKE_CURRENT_SOURCE_DIR}/unet_parity_test.cpp
               ${CMAKE_CURRENT_SOURCE_DIR}/unet_bf16_parity_test.cpp ${CMAKE_CURRENT_SOURCE_DIR}/scheduler_parity_test.cpp)
target_link_libraries(test_parity_unet PRIVATE dualign_models dualign_diffusion GTest::gtest GTest::gtest_main)
target_precompile_headers(test_parity_unet REUSE_FROM dualign_torch_pch)
target_compile_options(test_parity_unet PRIVATE -Wno-missing-field-initializers)
# gtest_discover_tests keeps only the first entry of an ENVIRONMENT list; run the tests through `env` instead.
set_target_properties(test_parity_unet PROPERTIES CROSSCOMPILING_EMULATOR
                      "env;DUALIGN_PARITY_DIR=${_fixtures};DUALIGN_PYTHON=${DUALIGN_PYTHON};OMP_NUM_THREADS=1;DUALIGN_THREADS=1")
gtest_discover_tests(test_parity_unet PROPERTIES LABELS parity TIMEOUT 300 FIXTURES_REQUIRED unet_fixtures
                     DISCOVERY_TIMEOUT 60)

# SD-1.5: exact parameter count (cheap-ish: allocation only) and one checkpointed forward+backward at a
# 4x32x32 latent on CPU (heavy: label sd15, opt-in below).
add_executable(test_sd15 ${CMAKE_CURRENT_SOURCE_DIR}/sd15_test.cpp)
target_link_libraries(test_sd15 PRIVATE dualign_models GTest::gtest GTest::gtest_main)
target_precompile_headers(test_sd15 REUSE_FROM dualign_torch_pch)
add_test(NAME parity_sd15_parameter_count COMMAND test_sd15 --gtest_filter=SD15.ParameterCount)
set_tests_properties(parity_sd15_parameter_count PROPERTIES LABELS parity TIMEOUT 300
                     ENVIRONMENT "DUALIGN_SOURCE_DIR=${CMAKE_SOURCE_DIR};OMP_NUM_THREADS=1")
# ~1 min and 7 GiB on 2 cores: only with -DDUALIGN_HEAVY_TESTS=ON (or run the binary directly).
option(DUALIGN_HEAVY_TESTS "Add heavy tests (SD-1.5 forward+backward on CPU)" OFF)
if(DUALIGN_HEAVY_TESTS)
  add_test(NAME sd15_forward_backward_cpu COMMAND test_sd15 --gtest_filter=SD15.ForwardBackwardCheckpointed)
  set_tests_properties(sd15_forward_backward_cpu PROPERTIES LABELS sd15 TIMEOUT 3600 RUN_SERIAL TRUE
                       ENVIRONMENT "DUALIGN_SOURCE_DIR=${CMAKE_SOURCE_DIR};DUALIGN_THREADS=2")
endif()
