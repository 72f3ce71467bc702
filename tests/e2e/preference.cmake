# Preference alignment (dpo, dmpo, kto) on the 2-D mixture: closed-form first losses, learning, np=1 == np=2,
# exact resume, eval gain over the reference.
dualign_add_py_test(e2e_preference SCRIPT ${CMAKE_CURRENT_LIST_DIR}/preference_test.py LABELS e2e TIMEOUT 900 PROCESSORS 2)
