# dist: collectives, gradient sync (DDP-style) and ZeRO-1 equivalence, failure handling — under mpirun.
dualign_add_mpi_test(dist_comm_test SOURCES dist_test_main.cpp dist_comm_test.cpp LIBS dualign_dist NP 1 2 4
                     TIMEOUT 120)
target_precompile_headers(dist_comm_test REUSE_FROM dualign_torch_pch)

# Failure handling: a throwing rank and a silent rank must both end the whole job promptly (< 30 s).
add_executable(dist_failure_probe dist_failure_probe.cpp)
target_link_libraries(dist_failure_probe PRIVATE dualign_dist)
target_precompile_headers(dist_failure_probe REUSE_FROM dualign_torch_pch)
add_test(NAME dist_failure_test
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/dist_failure_test.sh ${DUALIGN_MPIEXEC} -- $<TARGET_FILE:dist_failure_probe>)
set_tests_properties(dist_failure_test PROPERTIES LABELS mpi TIMEOUT 200 PROCESSORS 3)

# DDP-style gradient sync and ZeRO-1 vs a single-process reference; ZeRO-1 state shrink.
dualign_add_mpi_test(dist_equivalence_test SOURCES dist_test_main.cpp dist_equivalence_test.cpp LIBS dualign_dist
                     NP 1 2 4 TIMEOUT 300)
target_precompile_headers(dist_equivalence_test REUSE_FROM dualign_torch_pch)

# GradSync edge cases (unused params, bf16 params with fp32 accumulation, .grad reset to None).
dualign_add_mpi_test(dist_grad_sync_test SOURCES dist_test_main.cpp dist_grad_sync_test.cpp LIBS dualign_dist
                     NP 1 2 TIMEOUT 120)
target_precompile_headers(dist_grad_sync_test REUSE_FROM dualign_torch_pch)

# Graceful stop: the ranks' non-blocking vote agrees on the same step.
dualign_add_mpi_test(dist_stop_vote_test SOURCES dist_test_main.cpp dist_stop_vote_test.cpp LIBS dualign_dist NP 1 2 4
                     TIMEOUT 60)
target_precompile_headers(dist_stop_vote_test REUSE_FROM dualign_torch_pch)

# Adafactor: DDP vs a single process on the global batch, ZeRO-1/2 (whole parameters per rank) vs DDP.
dualign_add_mpi_test(dist_adafactor_test SOURCES dist_test_main.cpp dist_adafactor_test.cpp LIBS dualign_dist
                     NP 1 2 TIMEOUT 300)
target_precompile_headers(dist_adafactor_test REUSE_FROM dualign_torch_pch)
