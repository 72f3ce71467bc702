# dist: pure layout logic (bucket assignment, ZeRO shard offsets).
dualign_add_gtest(dist_unit_test SOURCES dist/layout_test.cpp dist/memory_plan_test.cpp dist/host_sync_test.cpp dist/device_memory_test.cpp dist/reshard_test.cpp
                  dist/launch_env_test.cpp LIBS dualign_dist LABELS unit TIMEOUT 60)
target_precompile_headers(dist_unit_test REUSE_FROM dualign_torch_pch)
