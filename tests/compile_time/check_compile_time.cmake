# Times the compilation of one object target and fails past twice its budget.
#
#   cmake -DBUILD_DIR=<build tree> -DTARGET=<object library> -DOBJECTS=<its object files>
#         -DBUDGET=<seconds> -P check_compile_time.cmake
#
# The objects are deleted first, so the build compiles them again; the wall-clock time of
# that build is compared with 2 x BUDGET, a generous bound that an unloaded or a busy
# 2-core machine both meet unless the headers really got slower to compile.
foreach(var BUILD_DIR TARGET OBJECTS BUDGET)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_compile_time.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE ${OBJECTS})
string(TIMESTAMP start "%s")
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}"
  RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
string(TIMESTAMP stop "%s")
if(NOT status EQUAL 0)
  message(FATAL_ERROR "building ${TARGET} failed:\n${output}")
endif()
math(EXPR seconds "${stop} - ${start}")
math(EXPR limit "2 * ${BUDGET}")
message(STATUS "${TARGET}: compiled in ${seconds} s (budget ${BUDGET} s; this test fails past ${limit} s)")
if(seconds GREATER limit)
  message(FATAL_ERROR "${TARGET} took ${seconds} s to compile, more than twice its budget of ${BUDGET} s")
endif()
