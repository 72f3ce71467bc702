# Test helpers. Labels: unit, mpi (under mpirun), parity (against diffusers/PyTorch), e2e.
include(GoogleTest)

# dualign_include_fragments()
# Includes every <module>.cmake beside the calling CMakeLists.txt (tests/<suite>/, bench/) except the modules in
# DUALIGN_SKIP_MODULES: each module adds its tests in its own fragment so parallel work never edits one file.
# A macro, not a function: the fragments run in the caller's scope, as if written there.
macro(dualign_include_fragments)
  file(GLOB _fragments CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cmake)
  foreach(_f ${_fragments})
    get_filename_component(_module ${_f} NAME_WE)
    if(NOT _module IN_LIST DUALIGN_SKIP_MODULES)
      include(${_f})
    endif()
  endforeach()
endmacro()

set(DUALIGN_MPIEXEC ${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe --bind-to none
    -x OMP_NUM_THREADS=1 -x DUALIGN_THREADS=1)

# dualign_add_gtest(NAME SOURCES a.cpp ... LIBS lib ... [LABELS unit] [TIMEOUT s])
# One executable; every TEST becomes its own ctest entry.
function(dualign_add_gtest name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  # gtest_discover_tests keeps only the first ENVIRONMENT entry, so the environment goes in through the
  # emulator property (read when gtest_discover_tests is called).
  set_target_properties(${name} PROPERTIES CROSSCOMPILING_EMULATOR
      "env;DUALIGN_SOURCE_DIR=${CMAKE_SOURCE_DIR};DUALIGN_PYTHON=${DUALIGN_PYTHON};OMP_NUM_THREADS=1;DUALIGN_THREADS=1")
  gtest_discover_tests(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT} DISCOVERY_TIMEOUT 60)
endfunction()

# dualign_add_mpi_test(NAME SOURCES ... LIBS ... NP 1 2 4 [TIMEOUT s])
# A GoogleTest binary with its own main (MPI init/finalize) run as one ctest entry per world size.
function(dualign_add_mpi_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;NP" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest)
  foreach(np ${T_NP})
    add_test(NAME ${name}.np${np} COMMAND ${DUALIGN_MPIEXEC} -np ${np} $<TARGET_FILE:${name}>)
    set_tests_properties(${name}.np${np} PROPERTIES LABELS mpi TIMEOUT ${T_TIMEOUT} PROCESSORS ${np}
                         ENVIRONMENT "DUALIGN_SOURCE_DIR=${CMAKE_SOURCE_DIR};DUALIGN_PYTHON=${DUALIGN_PYTHON}")
  endforeach()
endfunction()

# dualign_add_py_test(NAME SCRIPT path [ARGS ...] [LABELS parity] [TIMEOUT s] [PROCESSORS n])
# Runs a Python script from the venv (diffusers, tensorboard, h5py); DUALIGN_BIN is the build's bin directory and
# DUALIGN_SOURCE_DIR the repository (tests/e2e/e2e_util.py reads both). PROCESSORS: cores it holds (its mpirun ranks).
function(dualign_add_py_test name)
  cmake_parse_arguments(T "" "SCRIPT;TIMEOUT;PROCESSORS" "ARGS;LABELS;DEPENDS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS parity)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  if(NOT T_PROCESSORS)
    set(T_PROCESSORS 1)
  endif()
  add_test(NAME ${name} COMMAND ${DUALIGN_PYTHON} ${T_SCRIPT} ${T_ARGS})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT} PROCESSORS ${T_PROCESSORS}
                       ENVIRONMENT "DUALIGN_BIN=${CMAKE_BINARY_DIR}/bin;DUALIGN_SOURCE_DIR=${CMAKE_SOURCE_DIR};OMP_NUM_THREADS=1")
endfunction()
