# ar_add_test(NAME SOURCES ... LIBS ... [GPU [MIN_GPUS n]])
# Builds one Catch2 executable and registers each TEST_CASE with CTest. A GPU test binary exits 77 when it
# finds no GPU (or fewer than MIN_GPUS); SKIP_RETURN_CODE 77 makes CTest report that as skipped, never as
# passed. In a build without the CUDA layer a GPU test's sources cannot compile: the test is then registered
# once, as NAME, running a binary of tests/gpu_main.cpp alone, which says why and exits 77 (skipped too, not
# left out).
add_library(ar_catch_main OBJECT ${PROJECT_SOURCE_DIR}/tests/catch_main.cpp)
target_link_libraries(ar_catch_main PUBLIC Catch2::Catch2)

function(ar_add_test NAME)
  cmake_parse_arguments(ARG "GPU" "MIN_GPUS" "SOURCES;LIBS" ${ARGN})
  if(ARG_GPU AND NOT AR_HAVE_CUDA)
    if(NOT TARGET ar_gpu_tests_not_built)
      add_executable(ar_gpu_tests_not_built ${PROJECT_SOURCE_DIR}/tests/gpu_main.cpp)
      target_link_libraries(ar_gpu_tests_not_built PRIVATE Catch2::Catch2 ar_options)
      target_compile_definitions(ar_gpu_tests_not_built PRIVATE AR_MIN_GPUS=1)
    endif()
    add_test(NAME ${NAME} COMMAND ar_gpu_tests_not_built)
    set_tests_properties(${NAME} PROPERTIES SKIP_RETURN_CODE 77)
    return()
  endif()
  if(NOT ARG_MIN_GPUS)
    set(ARG_MIN_GPUS 1)
  endif()
  if(ARG_GPU)
    add_executable(${NAME} ${ARG_SOURCES} ${PROJECT_SOURCE_DIR}/tests/gpu_main.cpp)
  else()
    add_executable(${NAME} ${ARG_SOURCES} $<TARGET_OBJECTS:ar_catch_main>)
  endif()
  target_link_libraries(${NAME} PRIVATE Catch2::Catch2 ar_options ${ARG_LIBS})
  target_include_directories(${NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  # The mnnvl-ar path for tests that start it is ar_test_support's (tests/support/cli_runs.h).
  target_compile_definitions(${NAME} PRIVATE AR_SOURCE_DIR="${PROJECT_SOURCE_DIR}" AR_MIN_GPUS=${ARG_MIN_GPUS})
  # --warn NoTests: a test whose name CTest cannot pass back to Catch (a ';' splits it) matches nothing and
  # fails, instead of passing without running.
  catch_discover_tests(${NAME}
    TEST_PREFIX "${NAME}:"
    EXTRA_ARGS --warn NoTests
    PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600)
endfunction()
