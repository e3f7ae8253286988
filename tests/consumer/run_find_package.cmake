# ctest driver: build and run tests/consumer against slimnn found with find_package.
#
#   cmake -DMODE=install|build_tree -DSLIMNN_BUILD_DIR=... -DCONSUMER_SOURCE_DIR=...
#         -DSCRATCH_DIR=... [-DCONSUMER_GENERATOR=... -DCONSUMER_MAKE_PROGRAM=...
#         -DCONSUMER_CXX_COMPILER=... -DCONSUMER_BUILD_TYPE=...] -P run_find_package.cmake
#
# MODE=install     cmake --install <build> --prefix <scratch>/prefix, then
#                  CMAKE_PREFIX_PATH=<scratch>/prefix
# MODE=build_tree  slimnn_DIR=<build dir> (the build-tree export)
cmake_minimum_required(VERSION 3.25)

foreach(var MODE SLIMNN_BUILD_DIR CONSUMER_SOURCE_DIR SCRATCH_DIR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_find_package.cmake: ${var} is not set")
  endif()
endforeach()

function(run_step what)
  message(STATUS "consumer: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer: ${what} failed (${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE "${SCRATCH_DIR}")
file(MAKE_DIRECTORY "${SCRATCH_DIR}")
set(prefix "${SCRATCH_DIR}/prefix")
set(build "${SCRATCH_DIR}/build")

set(configure_args
  -S "${CONSUMER_SOURCE_DIR}" -B "${build}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
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

if(MODE STREQUAL "install")
  run_step("install slimnn into ${prefix}"
    "${CMAKE_COMMAND}" --install "${SLIMNN_BUILD_DIR}" --prefix "${prefix}" ${config_args})
  # The installed config must be found under the prefix, whatever its libdir is.
  file(GLOB_RECURSE config_file "${prefix}/*/slimnnConfig.cmake")
  list(LENGTH config_file n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "consumer: expected one installed slimnnConfig.cmake, found: ${config_file}")
  endif()
  get_filename_component(expected_dir "${config_file}" DIRECTORY)
  list(APPEND configure_args
    "-DCMAKE_PREFIX_PATH=${prefix}"
    "-DEXPECTED_SLIMNN_DIR=${expected_dir}")
elseif(MODE STREQUAL "build_tree")
  list(APPEND configure_args
    "-Dslimnn_DIR=${SLIMNN_BUILD_DIR}"
    "-DEXPECTED_SLIMNN_DIR=${SLIMNN_BUILD_DIR}")
else()
  message(FATAL_ERROR "run_find_package.cmake: unknown MODE '${MODE}'")
endif()

run_step("configure" "${CMAKE_COMMAND}" ${configure_args})
run_step("build" "${CMAKE_COMMAND}" --build "${build}" ${config_args})
foreach(program slimnn_consumer slimnn_crew_consumer)
  if(CONSUMER_BUILD_TYPE AND EXISTS "${build}/${CONSUMER_BUILD_TYPE}/${program}")
    set(exe "${build}/${CONSUMER_BUILD_TYPE}/${program}")   # multi-config generators
  else()
    set(exe "${build}/${program}")
  endif()
  run_step("run ${program}" "${exe}" "${build}/${program}.safetensors")
  set(${program}_exe "${exe}")
endforeach()

# The CREW-only program must not load FFTW or zlib (it links slimnn::core + slimnn::io).
find_program(LDD ldd)
if(LDD)
  execute_process(COMMAND "${LDD}" "${slimnn_crew_consumer_exe}" OUTPUT_VARIABLE libs RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer: ldd ${slimnn_crew_consumer_exe} failed (${rc})")
  endif()
  if(libs MATCHES "fftw|libz\\.so")
    message(FATAL_ERROR "consumer: the CREW-only program links FFTW or zlib:\n${libs}")
  endif()
  # The check can fail: the full program links both.
  execute_process(COMMAND "${LDD}" "${slimnn_consumer_exe}" OUTPUT_VARIABLE libs)
  if(NOT libs MATCHES "fftw3f")
    message(FATAL_ERROR "consumer: ldd shows no FFTW in the full program either, so the check proves nothing:\n${libs}")
  endif()
  message(STATUS "consumer: the CREW-only program loads no FFTW and no zlib")
else()
  message(STATUS "consumer: no ldd here, link check skipped")
endif()
