# Unit tests of src/diffusion (schedules, samplers, SDE/ODE, likelihood).
file(GLOB _diffusion_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/diffusion/*.cpp)
dualign_add_gtest(test_diffusion SOURCES ${_diffusion_tests} ${CMAKE_CURRENT_SOURCE_DIR}/common/threads_env.cpp LIBS dualign_diffusion LABELS unit)
target_precompile_headers(test_diffusion REUSE_FROM dualign_torch_pch)
# C++20 designated initializers that leave members at their defaults are intended.
target_compile_options(test_diffusion PRIVATE -Wno-missing-field-initializers)
