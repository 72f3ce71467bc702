# rewards/: reward values, Bradley–Terry / KTO labelling frequencies, the CNN classifier and its checkpoint.
dualign_add_gtest(rewards_unit_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/rewards_test.cpp
  LIBS dualign_rewards LABELS unit)
target_precompile_headers(rewards_unit_tests REUSE_FROM dualign_torch_pch)
