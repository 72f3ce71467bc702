# Mixture composition (OR) on the 2-D two-dataset mixture: np=1 == np=2, λ identical on every rank, λ toward
# the 2-mode dataset, SIGKILL + resume restores λ, data without group ids refused.
dualign_add_py_test(e2e_mixture SCRIPT ${CMAKE_CURRENT_LIST_DIR}/mixture_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
