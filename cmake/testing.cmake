# testing.cmake: one helper to add a test program as its own CTest process.
#
# shoal_test(NAME name SOURCES a.c ... LABEL unit [TIMEOUT s] [LIBS ...] [ARGS ...])
# Every test has a label (unit, integration, mpi, slurm, interop, gpu, fuzz, bench) and a
# timeout. Exit code 77 means "skipped" (a gpu test without a device, say).
function(shoal_test)
  cmake_parse_arguments(T "" "NAME;LABEL;TIMEOUT" "SOURCES;LIBS;ARGS;COMMAND" ${ARGN})
  if(NOT T_LABEL)
    message(FATAL_ERROR "shoal_test(${T_NAME}): LABEL is required")
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  if(T_SOURCES)
    add_executable(${T_NAME} ${T_SOURCES})
    target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
    target_link_libraries(${T_NAME} PRIVATE ${T_LIBS})
    add_test(NAME ${T_NAME} COMMAND ${T_NAME} ${T_ARGS})
  else()
    add_test(NAME ${T_NAME} COMMAND ${T_COMMAND} ${T_ARGS})
  endif()
  set_tests_properties(${T_NAME} PROPERTIES LABELS ${T_LABEL} TIMEOUT ${T_TIMEOUT}
    SKIP_RETURN_CODE 77
    ENVIRONMENT "SHOAL_SOURCE_DIR=${PROJECT_SOURCE_DIR};SHOAL_BINARY_DIR=${PROJECT_BINARY_DIR};SHOAL_BIN=$<TARGET_FILE:shoal>")
endfunction()
