# ckpt/: checkpoint round trips, clear errors, atomic store with a kill during writing.
dualign_add_gtest(ckpt_unit_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ckpt_test.cpp
  LIBS dualign_ckpt LABELS unit)
target_precompile_headers(ckpt_unit_tests REUSE_FROM dualign_torch_pch)
