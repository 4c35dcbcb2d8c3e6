# Helpers that keep each folder's CMakeLists.txt down to a list of files.
#
# relay_layer(NAME SOURCES a.c b.c DEPS relay_core ...)
#   builds static library relay_<NAME> (internal symbols visible to tests,
#   hidden in the shared library) and records it for the aggregate library.
# relay_test(NAME SOURCES x_test.c DEPS relay_core LABELS unit [TIMEOUT s])
#   builds a cmocka test program and registers it with CTest.

set(RELAY_TEST_TIMEOUT_SCALE 1 CACHE STRING "Multiplier for test timeouts (sanitizer builds)")

function(relay_layer name)
  cmake_parse_arguments(L "" "" "SOURCES;DEPS;LIBS" ${ARGN})
  add_library(relay_${name} STATIC ${L_SOURCES})
  target_include_directories(relay_${name} PUBLIC ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src
                             ${PROJECT_BINARY_DIR}/generated)
  target_link_libraries(relay_${name} PUBLIC ${L_DEPS} ${L_LIBS})
  set_target_properties(relay_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  set_property(GLOBAL APPEND PROPERTY RELAY_LAYERS relay_${name})
endfunction()

function(relay_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT RELAY_BUILD_TESTS)
    return()
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_DEPS} ${CMOCKA_LIBRARIES})
  target_include_directories(${name} PRIVATE ${CMOCKA_INCLUDE_DIRS} ${PROJECT_SOURCE_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  math(EXPR t "${T_TIMEOUT} * ${RELAY_TEST_TIMEOUT_SCALE}")
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${t} LABELS "${T_LABELS}"
                       ENVIRONMENT "RELAY_SOURCE_DIR=${PROJECT_SOURCE_DIR};RELAY_BINARY_DIR=${PROJECT_BINARY_DIR}")
endfunction()

# relay_fuzz(NAME SOURCES f.c DEPS ...): a libFuzzer target when RELAY_FUZZ is on
# (clang), otherwise a replay driver that runs the committed corpus as a unit test.
function(relay_fuzz name)
  cmake_parse_arguments(F "" "CORPUS" "SOURCES;DEPS" ${ARGN})
  if(RELAY_FUZZ)
    add_executable(${name} ${F_SOURCES})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE ${F_DEPS})
  elseif(RELAY_BUILD_TESTS)
    add_executable(${name}_replay ${F_SOURCES} ${PROJECT_SOURCE_DIR}/fuzz/replay_main.c)
    target_link_libraries(${name}_replay PRIVATE ${F_DEPS})
    add_test(NAME ${name}_replay COMMAND ${name}_replay ${F_CORPUS})
    set_tests_properties(${name}_replay PROPERTIES LABELS "unit;fuzz" TIMEOUT 300)
  endif()
endfunction()
