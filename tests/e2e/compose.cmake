# `dualign compose` end to end on two tiny 2-D models: dual-only and primal runs, exact answers, resume, np=2.
dualign_add_py_test(e2e_compose SCRIPT ${CMAKE_CURRENT_LIST_DIR}/compose_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
# Concept composition by prompt on a tiny random SD pipeline under mpirun -np 2 (dualign compose --prompts).
dualign_add_py_test(e2e_compose_prompts SCRIPT ${CMAKE_CURRENT_LIST_DIR}/sd15_concepts_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
