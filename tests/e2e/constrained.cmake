# Constrained alignment on the 2-D mixture under mpirun -np 2: λ rises for a violated constraint, the same λ on
# every rank and in the checkpoint, np=1 == np=2, and a SIGKILLed run resumes to the same λ and parameters.
dualign_add_py_test(e2e_constrained SCRIPT ${CMAKE_CURRENT_LIST_DIR}/constrained_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
# experiment=sd15_constrained_aesthetic (Experiment I: LoRA, guided rollouts, three z-scored rewards through the VAE)
# on tiny random models under mpirun -np 2.
dualign_add_py_test(e2e_sd15_constrained SCRIPT ${CMAKE_CURRENT_LIST_DIR}/sd15_constrained_test.py LABELS e2e TIMEOUT 600 PROCESSORS 2)
