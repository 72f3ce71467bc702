# data/: HDF5 wrapper, schema validation (bad files), sharded resumable loader, the recipe's per-step draws.
dualign_add_gtest(data_unit_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/data_h5_test.cpp ${CMAKE_CURRENT_LIST_DIR}/data_schema_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/data_loader_test.cpp ${CMAKE_CURRENT_LIST_DIR}/data_augment_test.cpp
  LIBS dualign_data LABELS unit)
target_precompile_headers(data_unit_tests REUSE_FROM dualign_torch_pch)
