# methods/: preference losses in closed form at the reference, shared noise per pair, learning direction.
dualign_add_gtest(methods_unit_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/methods_test.cpp ${CMAKE_CURRENT_LIST_DIR}/methods_host_sync_test.cpp
  LIBS dualign_methods dualign_config LABELS unit)
target_precompile_headers(methods_unit_tests REUSE_FROM dualign_torch_pch)
