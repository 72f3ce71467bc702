dualign_add_gtest(config_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/config_test.cpp ${CMAKE_CURRENT_LIST_DIR}/config_grammar_test.cpp
                  LIBS dualign_config LABELS unit)
target_compile_definitions(config_test PRIVATE DUALIGN_TEST_DIR="${CMAKE_CURRENT_LIST_DIR}")
