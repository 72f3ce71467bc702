# train/: the fp16 loss scale, the non-finite policy, DistributedOptimizer under mixed precision (with SelfComm).
dualign_add_gtest(train_unit_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/train/loss_scaler_test.cpp ${CMAKE_CURRENT_LIST_DIR}/train/nonfinite_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/train/optimizer_precision_test.cpp ${CMAKE_CURRENT_LIST_DIR}/train/optimizer_adafactor_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/common/threads_env.cpp
  LIBS dualign_train LABELS unit)
target_include_directories(train_unit_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_precompile_headers(train_unit_tests REUSE_FROM dualign_torch_pch)
target_compile_options(train_unit_tests PRIVATE -Wno-missing-field-initializers)
# Unit tests of src/train's data sources (HDF5 label dropout for classifier-free guidance).
dualign_add_gtest(test_train_sources SOURCES ${CMAKE_CURRENT_LIST_DIR}/train_sources_test.cpp
                  LIBS dualign_train dualign_data dualign_config LABELS unit)
target_precompile_headers(test_train_sources REUSE_FROM dualign_torch_pch)
target_compile_options(test_train_sources PRIVATE -Wno-missing-field-initializers)
