# data_tools: the Pick-a-Pic converter on generated parquets with tiny random VAE/CLIP models (no downloads):
# content, two parallel Slurm-array tasks == one process, reruns skip finished units; every file passes validate.
dualign_add_py_test(data_pickapic_converter SCRIPT ${CMAKE_SOURCE_DIR}/tests/e2e/data_pickapic_test.py LABELS e2e
                    PROCESSORS 2)
# `dualign data` writers + validate (h5py reads the files; Bradley-Terry statistics; bad files exit 1).
dualign_add_py_test(data_cli SCRIPT ${CMAKE_SOURCE_DIR}/tests/e2e/data_cli_test.py LABELS e2e)
# The loader in real processes: mpirun -np 2 `dualign data peek` shards vs np=1, cursors across world sizes.
dualign_add_py_test(data_loader_mpi SCRIPT ${CMAKE_SOURCE_DIR}/tests/e2e/data_loader_mpi_test.py LABELS e2e)
