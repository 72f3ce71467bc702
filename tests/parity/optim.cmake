# Optimizers (label parity): dualign's Adafactor against transformers.optimization.Adafactor on a tiny model,
# from fixtures a Python step writes (no download).
set(_optim_fixtures ${CMAKE_BINARY_DIR}/parity_fixtures_optim)
add_test(NAME parity_make_adafactor_fixtures
         COMMAND ${DUALIGN_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/make_adafactor_fixtures.py ${_optim_fixtures})
set_tests_properties(parity_make_adafactor_fixtures PROPERTIES LABELS parity TIMEOUT 300
                     FIXTURES_SETUP adafactor_fixtures ENVIRONMENT "OMP_NUM_THREADS=1;DUALIGN_THREADS=1")

add_executable(test_parity_adafactor ${CMAKE_CURRENT_SOURCE_DIR}/adafactor_parity_test.cpp)
target_link_libraries(test_parity_adafactor PRIVATE dualign_dist dualign_models GTest::gtest GTest::gtest_main)
target_precompile_headers(test_parity_adafactor REUSE_FROM dualign_torch_pch)
set_target_properties(test_parity_adafactor PROPERTIES CROSSCOMPILING_EMULATOR
                      "env;DUALIGN_PARITY_DIR=${_optim_fixtures};OMP_NUM_THREADS=1;DUALIGN_THREADS=1")
gtest_discover_tests(test_parity_adafactor PROPERTIES LABELS parity TIMEOUT 120 FIXTURES_REQUIRED adafactor_fixtures
                     DISCOVERY_TIMEOUT 60)
