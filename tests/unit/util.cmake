# util: process-level pieces without torch (stop signal handlers).
dualign_add_gtest(util_test SOURCES util/stop_signal_test.cpp LIBS dualign_util LABELS unit TIMEOUT 60)
