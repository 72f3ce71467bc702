# The module graph (docs/architecture.md): no include or link cycle, no unused or missing link, drawing current.
dualign_add_py_test(arch_module_graph SCRIPT ${CMAKE_SOURCE_DIR}/tests/arch/module_graph.py
                    ARGS --check-doc ${CMAKE_SOURCE_DIR}/docs/architecture.md LABELS unit TIMEOUT 60)
