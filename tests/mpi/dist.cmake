# dist: collectives, gradient sync (DDP-style) and ZeRO-1 equivalence, failure handling — under mpirun.
dualign_add_mpi_test(dist_comm_test SOURCES dist_test_main.cpp dist_comm_test.cpp LIBS dualign_dist NP 1 2 4
                     TIMEOUT 120)
target_precompile_headers(dist_comm_test REUSE_FROM dualign_torch_pch)
