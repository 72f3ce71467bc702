# Unit tests of src/eval: win rates, class histograms, PF-ODE and path KL against closed forms, implicit
# accuracy, PNG grids, sample files, YAML spec files; guided sampling of rows, the split over ranks and the merge.
dualign_add_gtest(test_eval SOURCES ${CMAKE_CURRENT_LIST_DIR}/eval_test.cpp ${CMAKE_CURRENT_LIST_DIR}/eval_sampling_test.cpp
                  LIBS dualign_eval LABELS unit)
target_precompile_headers(test_eval REUSE_FROM dualign_torch_pch)
