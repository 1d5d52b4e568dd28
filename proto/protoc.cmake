# protoc.cmake: shoal_protoc_c(), compile a .proto into protobuf-c sources at build time.
#
#   shoal_protoc_c(OUT_VAR file.proto [IMPORT_DIRS dir ...])
# Generates <name>.pb-c.c and <name>.pb-c.h in the calling directory's binary dir and sets
# OUT_VAR to both paths; add them to a target and give it
# target_include_directories(... ${CMAKE_CURRENT_BINARY_DIR}) so `#include "name.pb-c.h"` works.
# The .proto's own directory is always on the import path. protobuf-c has no C code for
# google/protobuf/*.proto well-known types, so shoal's protos do not import them.
function(shoal_protoc_c out_var proto)
  cmake_parse_arguments(P "" "" "IMPORT_DIRS" ${ARGN})
  if(NOT PROTOC_C)
    message(FATAL_ERROR "shoal_protoc_c(${proto}): protoc-c not found (Debian: protobuf-c-compiler)")
  endif()
  get_filename_component(abs ${proto} ABSOLUTE)
  get_filename_component(dir ${abs} DIRECTORY)
  get_filename_component(name ${abs} NAME_WE)
  set(c ${CMAKE_CURRENT_BINARY_DIR}/${name}.pb-c.c)
  set(h ${CMAKE_CURRENT_BINARY_DIR}/${name}.pb-c.h)
  set(incs -I${dir})
  foreach(d ${P_IMPORT_DIRS})
    list(APPEND incs -I${d})
  endforeach()
  add_custom_command(OUTPUT ${c} ${h}
    COMMAND ${PROTOC_C} --c_out=${CMAKE_CURRENT_BINARY_DIR} ${incs} ${abs}
    DEPENDS ${abs}
    COMMENT "protoc-c ${name}.proto"
    VERBATIM)
  set(${out_var} ${c} ${h} PARENT_SCOPE)
endfunction()
