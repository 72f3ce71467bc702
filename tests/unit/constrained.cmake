# Constrained alignment (src/methods/constrained*, path_kl, reward_backprop): the path-KL estimator against closed
# forms, the truncated reward gradient, the primal/dual steps, world-size-independent draws, config errors.
dualign_add_gtest(constrained_unit_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/constrained_test.cpp ${CMAKE_CURRENT_LIST_DIR}/common/threads_env.cpp
  LIBS dualign_methods dualign_rewards dualign_config dualign_dist LABELS unit)
target_precompile_headers(constrained_unit_tests REUSE_FROM dualign_torch_pch)
target_compile_options(constrained_unit_tests PRIVATE -Wno-missing-field-initializers)
