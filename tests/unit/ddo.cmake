# Unit tests of src/ddo: the dual-averaging fixed point on RLHF, the DPO first variation against finite
# differences of the exact objective, and the h-transform samplers on a Gaussian reference with a linear potential.
dualign_add_gtest(test_ddo SOURCES ${CMAKE_CURRENT_LIST_DIR}/ddo_test.cpp LIBS dualign_ddo LABELS unit)
target_precompile_headers(test_ddo REUSE_FROM dualign_torch_pch)
