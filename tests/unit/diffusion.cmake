# Unit tests of src/diffusion (schedules, samplers, SDE/ODE, likelihood).
file(GLOB _diffusion_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/diffusion/*.cpp)
dualign_add_gtest(test_diffusion SOURCES ${_diffusion_tests} LIBS dualign_diffusion LABELS unit)
target_precompile_headers(test_diffusion REUSE_FROM dualign_torch_pch)
