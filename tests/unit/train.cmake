# Unit tests of src/train's data sources (HDF5 label dropout for classifier-free guidance).
dualign_add_gtest(test_train_sources SOURCES ${CMAKE_CURRENT_LIST_DIR}/train_sources_test.cpp
                  LIBS dualign_train dualign_data dualign_config LABELS unit)
target_precompile_headers(test_train_sources REUSE_FROM dualign_torch_pch)
target_compile_options(test_train_sources PRIVATE -Wno-missing-field-initializers)
