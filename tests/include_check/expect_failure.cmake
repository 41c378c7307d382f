# Runs the include check on the fixture tree beside this file, whose two planted upward includes
# it must report (by file, line and layers) and fail on; a check that passes everything fails here.
#
#   cmake -DCHECKER=<cmake/include_check.cmake> -P expect_failure.cmake
set(fixture ${CMAKE_CURRENT_LIST_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} -DROOT=${fixture} -DGRAPH=${fixture}/layers.cmake -P ${CHECKER}
  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "the include check passed a tree with upward includes:\n${output}")
endif()
foreach(expected
    "src/base/base.h:3 includes src/top/top.h: layer 'base' may not include layer 'top' (base depends on: no layer)"
    "src/pair/tape.h:4 includes src/pair/engine.h: layer 'tape' may not include layer 'engine' (tape depends on: base)")
  string(FIND "${output}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the include check's output lacks\n  ${expected}\n:\n${output}")
  endif()
endforeach()
string(REGEX MATCHALL "may not include" reported "${output}")
list(LENGTH reported count)
if(NOT count EQUAL 2)
  message(FATAL_ERROR "the include check reported ${count} upward includes, not the 2 planted:\n${output}")
endif()
