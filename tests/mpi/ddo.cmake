# ddo under MPI: the sharded tilt statistics, objectives (RLHF, DPO with all-gathered partners, KTO) and the
# data-parallel potential fit equal the single-process computation on the whole set, and f is bitwise the same
# on every rank.
dualign_add_mpi_test(ddo_dist_test SOURCES dist_test_main.cpp ddo_dist_test.cpp LIBS dualign_ddo NP 1 2 3 TIMEOUT 120)
target_precompile_headers(ddo_dist_test REUSE_FROM dualign_torch_pch)
