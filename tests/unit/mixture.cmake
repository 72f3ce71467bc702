# methods/mixture: OR composition by dual training — per-sample weights (exact / unbiased), ELBO weights against a
# Gaussian entropy difference, the λ-weighted loss, the dual step's direction, state, config and batch errors;
# the class_frequency constraint (sample counts over rank slices, logit adjustment, dual direction, errors).
dualign_add_gtest(mixture_unit_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/mixture_test.cpp ${CMAKE_CURRENT_LIST_DIR}/class_frequency_test.cpp
  LIBS dualign_methods dualign_config LABELS unit)
target_precompile_headers(mixture_unit_tests REUSE_FROM dualign_torch_pch)
