# Unit tests of src/compose: Lemma 2's weights and KL estimator against the closed-form Gaussian KL, the weighted
# score sum sampling the exact product of Gaussians, the exact grid product, one dual step and resume.
dualign_add_gtest(test_compose SOURCES ${CMAKE_CURRENT_LIST_DIR}/compose_test.cpp LIBS dualign_compose LABELS unit)
target_precompile_headers(test_compose REUSE_FROM dualign_torch_pch)
