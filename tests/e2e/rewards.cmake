# rewards end to end: `dualign reward train-classifier` on (a slice of) Fashion-MNIST, `dualign data pairs` from a
# tiny GMM model (points) and a tiny Fashion-MNIST UNet (images) — files validate, winners outscore losers.
dualign_add_py_test(e2e_rewards SCRIPT ${CMAKE_CURRENT_LIST_DIR}/rewards_test.py LABELS e2e TIMEOUT 300)
