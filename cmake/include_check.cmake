# Fails when a file includes a header of a layer above its own, the upward #include that the link
# check of gta_layer (CMakeLists.txt) cannot see: inline functions, templates and types leave no
# undefined reference behind. Run as a script:
#
#   cmake -DROOT=<source dir> -DGRAPH=<layer graph> [-DDEPFILE=<file> -DSTAMP=<file>] -P include_check.cmake
#
# GRAPH is the file CMakeLists.txt writes from what gta_layer recorded (or a test's fixture):
# GTA_LAYERS, and for each layer GTA_LAYER_<name>_SOURCES and GTA_LAYER_<name>_DEPS (the
# layers it links directly), plus GTA_INCLUDE_DIRS, where "..." includes are looked up after the
# includer's own directory. Relative paths are relative to ROOT. With DEPFILE, the files read are
# written there as STAMP's dependencies, so that the build runs the check again when one changes.
#
# Which layer a file belongs to: the layer whose SOURCES list it; else the layer of the .cpp or .cu
# of the same name beside it (src/autograd/tape.h goes with tape.cpp); else the layer whose sources
# lie in its directory, or the nearest directory above it that holds sources. A directory holding
# two layers' sources (src/autograd) cannot decide alone, so a header there without a source of
# its name is an error. An included file outside every layer's directories, or found nowhere in
# the source tree (third-party headers, the protobuf headers generated in the build tree), belongs
# to no layer and is not checked.
cmake_minimum_required(VERSION 3.24)
foreach(var ROOT GRAPH)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "include_check.cmake: -D${var}=... is required")
  endif()
endforeach()
get_filename_component(ROOT "${ROOT}" ABSOLUTE)
include(${GRAPH})

function(absolute out path)
  get_filename_component(path "${path}" ABSOLUTE BASE_DIR "${ROOT}")
  set(${out} "${path}" PARENT_SCOPE)
endfunction()

# Each layer's sources, its directories (the roots scanned) and the layers below it, breadth first
# so that the error message lists the direct dependencies first.
set(roots)
foreach(layer ${GTA_LAYERS})
  set(dirs)
  foreach(source ${GTA_LAYER_${layer}_SOURCES})
    absolute(source "${source}")
    set(layer_of_${source} ${layer})
    get_filename_component(dir "${source}" DIRECTORY)
    cmake_path(IS_PREFIX ROOT "${dir}" in_tree)
    if(in_tree)  # generated sources in the build tree are not read
      list(APPEND dirs "${dir}")
    endif()
  endforeach()
  list(REMOVE_DUPLICATES dirs)
  foreach(dir ${dirs})
    list(APPEND layers_in_${dir} ${layer})
  endforeach()
  list(APPEND roots ${dirs})

  set(below)
  set(queue ${GTA_LAYER_${layer}_DEPS})
  while(queue)
    list(POP_FRONT queue dep)
    if(NOT dep IN_LIST below)
      list(APPEND below ${dep})
      list(APPEND queue ${GTA_LAYER_${dep}_DEPS})
    endif()
  endwhile()
  set(below_${layer} ${below})
endforeach()
list(REMOVE_DUPLICATES roots)
set(include_dirs)
foreach(dir ${GTA_INCLUDE_DIRS})
  absolute(dir "${dir}")
  list(APPEND include_dirs "${dir}")
endforeach()

# Sets <out> to the layer of <file>, empty when it has none; fails on a header that a directory of
# two layers leaves undecided.
function(layer_of out file)
  if(DEFINED layer_of_${file})
    set(${out} ${layer_of_${file}} PARENT_SCOPE)
    return()
  endif()
  get_filename_component(dir "${file}" DIRECTORY)
  get_filename_component(stem "${file}" NAME_WLE)
  foreach(ext cpp cu)
    if(DEFINED layer_of_${dir}/${stem}.${ext})
      set(${out} ${layer_of_${dir}/${stem}.${ext}} PARENT_SCOPE)
      return()
    endif()
  endforeach()
  while(NOT DEFINED layers_in_${dir})
    cmake_path(IS_PREFIX ROOT "${dir}" in_tree)
    if(NOT in_tree)
      break()
    endif()
    get_filename_component(dir "${dir}" DIRECTORY)
  endwhile()
  list(LENGTH layers_in_${dir} count)
  if(count GREATER 1)
    file(RELATIVE_PATH rel "${ROOT}" "${file}")
    list(JOIN layers_in_${dir} ", " layers)
    message(FATAL_ERROR "${rel}: its directory holds sources of the layers ${layers}, and no .cpp or .cu "
      "of its name says which layer it belongs to; name it after a source of its layer")
  endif()
  set(${out} "${layers_in_${dir}}" PARENT_SCOPE)
endfunction()

set(files)
foreach(dir ${roots})
  file(GLOB_RECURSE found "${dir}/*.h" "${dir}/*.cuh" "${dir}/*.cpp" "${dir}/*.cu")
  list(APPEND files ${found})
endforeach()
list(REMOVE_DUPLICATES files)
list(SORT files)

set(errors)
foreach(file ${files})
  layer_of(layer "${file}")
  get_filename_component(dir "${file}" DIRECTORY)
  file(READ "${file}" text)
  # Walk the includes in order, counting the lines passed on the way to each (the newline put
  # first lets the first line match like the others).
  string(PREPEND text "\n")
  set(line 0)
  while(text MATCHES "\n[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
    set(name "${CMAKE_MATCH_1}")
    string(FIND "${text}" "${CMAKE_MATCH_0}" at)
    string(LENGTH "${CMAKE_MATCH_0}" length)
    math(EXPR end "${at} + ${length}")
    string(SUBSTRING "${text}" 0 ${end} passed)
    string(SUBSTRING "${text}" ${end} -1 text)
    string(REGEX MATCHALL "\n" newlines "${passed}")
    list(LENGTH newlines count)
    math(EXPR line "${line} + ${count}")
    # The compiler's lookup: the includer's directory, then the include directories.
    set(included)
    foreach(base "${dir}" ${include_dirs})
      if(EXISTS "${base}/${name}")
        get_filename_component(included "${base}/${name}" ABSOLUTE)
        break()
      endif()
    endforeach()
    if(NOT included)
      continue()
    endif()
    layer_of(to "${included}")
    if(to AND NOT to STREQUAL layer AND NOT to IN_LIST below_${layer})
      file(RELATIVE_PATH from_rel "${ROOT}" "${file}")
      file(RELATIVE_PATH to_rel "${ROOT}" "${included}")
      if(below_${layer})
        list(JOIN below_${layer} ", " deps)
      else()
        set(deps "no layer")
      endif()
      string(APPEND errors "${from_rel}:${line} includes ${to_rel}: layer '${layer}' may not include layer "
        "'${to}' (${layer} depends on: ${deps})\n")
    endif()
  endwhile()
endforeach()

if(DEFINED DEPFILE)
  list(TRANSFORM files REPLACE " " "\\\\ ")
  list(JOIN files " \\\n  " deps)
  file(WRITE "${DEPFILE}" "${STAMP}: \\\n  ${deps}\n")
endif()
if(errors)
  # Printed as they are: FATAL_ERROR would rewrap the lines that editors and tests match.
  message(NOTICE "${errors}")
  message(FATAL_ERROR "a layer includes a header of a layer above it (docs/architecture.md, "
    "How the build keeps the layers)")
endif()
