# ctest driver: configure, build and run tests/consumer_subdir, which pulls slimnn in
# with add_subdirectory.
#
#   cmake -DSLIMNN_SOURCE_DIR=... -DCONSUMER_SOURCE_DIR=... -DSCRATCH_DIR=...
#         [-DCONSUMER_GENERATOR=... -DCONSUMER_MAKE_PROGRAM=... -DCONSUMER_CXX_COMPILER=...
#          -DCONSUMER_BUILD_TYPE=...] -P run_add_subdirectory.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var SLIMNN_SOURCE_DIR CONSUMER_SOURCE_DIR SCRATCH_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_add_subdirectory.cmake: ${var} is not set")
  endif()
endforeach()

function(run_step what)
  message(STATUS "consumer_subdir: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer_subdir: ${what} failed (${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE "${SCRATCH_DIR}")
set(build "${SCRATCH_DIR}/build")

set(configure_args
  -S "${CONSUMER_SOURCE_DIR}" -B "${build}"
  "-DSLIMNN_SOURCE_DIR=${SLIMNN_SOURCE_DIR}")
if(CONSUMER_GENERATOR)
  list(APPEND configure_args -G "${CONSUMER_GENERATOR}")
endif()
if(CONSUMER_MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${CONSUMER_MAKE_PROGRAM}")
endif()
if(CONSUMER_CXX_COMPILER)
  list(APPEND configure_args "-DCMAKE_CXX_COMPILER=${CONSUMER_CXX_COMPILER}")
endif()
if(CONSUMER_BUILD_TYPE)
  list(APPEND configure_args "-DCMAKE_BUILD_TYPE=${CONSUMER_BUILD_TYPE}")
  set(config_args --config "${CONSUMER_BUILD_TYPE}")
endif()

run_step("configure" "${CMAKE_COMMAND}" ${configure_args})
run_step("build" "${CMAKE_COMMAND}" --build "${build}" --target slimnn_consumer ${config_args})
if(CONSUMER_BUILD_TYPE AND EXISTS "${build}/${CONSUMER_BUILD_TYPE}/slimnn_consumer")
  set(exe "${build}/${CONSUMER_BUILD_TYPE}/slimnn_consumer")
else()
  set(exe "${build}/slimnn_consumer")
endif()
run_step("run" "${exe}")
