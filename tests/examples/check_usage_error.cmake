# Runs an example with a bad command line and checks that it fails as documented in
# examples/arguments.hpp: exit status 2, first line of stderr exactly EXPECTED, then the
# usage.
#   cmake -DPROGRAM=<exe> -DARGS=<args separated by |> -DEXPECTED=<line> -P check_usage_error.cmake
string(REPLACE "|" ";" _args "${ARGS}")
execute_process(COMMAND "${PROGRAM}" ${_args}
  RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REGEX REPLACE "\n.*" "" first_line "${err}")
if(NOT status STREQUAL "2")
  message(FATAL_ERROR "${PROGRAM} ${_args}: exit status '${status}', expected 2\nstderr:\n${err}")
endif()
if(NOT first_line STREQUAL "${EXPECTED}")
  message(FATAL_ERROR "${PROGRAM} ${_args}: first line of stderr\n  '${first_line}'\nexpected\n  '${EXPECTED}'")
endif()
if(NOT err MATCHES "\nusage: ")
  message(FATAL_ERROR "${PROGRAM} ${_args}: stderr does not show the usage after the error:\n${err}")
endif()
if(NOT out STREQUAL "")
  message(FATAL_ERROR "${PROGRAM} ${_args}: printed to stdout before failing:\n${out}")
endif()
