# dual: projections (exact against closed forms) and projected dual ascent on all-reduced estimates — the
# dual variables must be the same on every rank and equal to the single-process update on the global mean.
dualign_add_mpi_test(dual_ascent_test SOURCES dist_test_main.cpp dual_ascent_test.cpp LIBS dualign_dual NP 1 2
                     TIMEOUT 120)
target_precompile_headers(dual_ascent_test REUSE_FROM dualign_torch_pch)
