# train: the HDF5 source's recipe draws (posterior samples, flips, empty prompts) give every rank its rows of
# the same global draw, under mpirun at 1 and 2 ranks.
dualign_add_mpi_test(train_h5_source_test SOURCES dist_test_main.cpp train_h5_source_test.cpp
                     LIBS dualign_train dualign_config dualign_dist NP 1 2 TIMEOUT 120)
target_include_directories(train_h5_source_test PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
target_precompile_headers(train_h5_source_test REUSE_FROM dualign_torch_pch)
