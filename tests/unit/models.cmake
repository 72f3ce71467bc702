# Unit tests of src/models (MLP, UNet, checkpointing, safetensors, EMA).
file(GLOB _models_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/models/*.cpp)
# dualign_dist: the SDXL test checks `dualign plan`'s model table against the UNet configs.
dualign_add_gtest(test_models SOURCES ${_models_tests} ${CMAKE_CURRENT_SOURCE_DIR}/common/threads_env.cpp
                  LIBS dualign_models dualign_dist LABELS unit)
target_precompile_headers(test_models REUSE_FROM dualign_torch_pch)
# C++20 designated initializers that leave members at their defaults are intended.
target_compile_options(test_models PRIVATE -Wno-missing-field-initializers)
