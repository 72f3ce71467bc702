# compose under mpirun: the dual-only and primal loops give the single-process λ trajectory on any world size.
dualign_add_mpi_test(compose_mpi_test SOURCES dist_test_main.cpp compose_mpi_test.cpp LIBS dualign_compose NP 1 2
                     TIMEOUT 120)
target_include_directories(compose_mpi_test PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit)
target_precompile_headers(compose_mpi_test REUSE_FROM dualign_torch_pch)
