# train/: the fp16 loss scale, the non-finite policy, DistributedOptimizer under mixed precision (with SelfComm).
dualign_add_gtest(train_unit_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/train/loss_scaler_test.cpp ${CMAKE_CURRENT_LIST_DIR}/train/nonfinite_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/train/optimizer_precision_test.cpp ${CMAKE_CURRENT_LIST_DIR}/common/threads_env.cpp
  LIBS dualign_train LABELS unit)
target_include_directories(train_unit_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_precompile_headers(train_unit_tests REUSE_FROM dualign_torch_pch)
target_compile_options(train_unit_tests PRIVATE -Wno-missing-field-initializers)
