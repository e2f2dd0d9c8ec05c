# Decides whether the Python package's extension (python/) is built. It needs Python's headers and nanobind,
# which comes from PyPI: scripts/install-deps.sh puts nanobind, NumPy, ml_dtypes and pytest into .venv, and a
# configure that finds that environment uses its Python. MNNVL_AR_PYTHON=AUTO builds the extension when both
# are found; ON (the presets) refuses to configure without them, so the test suite never drops the Python
# tests unnoticed.
set(AR_HAVE_PYTHON OFF)
if(NOT MNNVL_AR_PYTHON STREQUAL "OFF")
  if(NOT DEFINED Python_EXECUTABLE AND NOT SKBUILD AND EXISTS "${PROJECT_SOURCE_DIR}/.venv/bin/python3")
    set(Python_EXECUTABLE "${PROJECT_SOURCE_DIR}/.venv/bin/python3")
  endif()
  find_package(Python 3.9 COMPONENTS Interpreter Development.Module)
  set(ar_python_missing "")
  if(Python_FOUND)
    execute_process(COMMAND "${Python_EXECUTABLE}" -m nanobind --cmake_dir OUTPUT_VARIABLE ar_nanobind_dir
                    OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE ar_nanobind_status ERROR_QUIET)
    if(ar_nanobind_status EQUAL 0)
      find_package(nanobind CONFIG PATHS "${ar_nanobind_dir}" NO_DEFAULT_PATH)
    endif()
    if(NOT nanobind_FOUND)
      set(ar_python_missing "nanobind for ${Python_EXECUTABLE}")
    endif()
  else()
    set(ar_python_missing "Python 3.9 or later with its headers (Debian: python3-dev)")
  endif()
  if(ar_python_missing STREQUAL "")
    set(AR_HAVE_PYTHON ON)
  elseif(MNNVL_AR_PYTHON STREQUAL "ON")
    message(FATAL_ERROR "MNNVL_AR_PYTHON=ON but ${ar_python_missing} was not found: run scripts/install-deps.sh "
                        "(it makes .venv), or configure with -DMNNVL_AR_PYTHON=OFF")
  endif()
endif()
message(STATUS "mnnvl-ar: Python package ${AR_HAVE_PYTHON} (MNNVL_AR_PYTHON=${MNNVL_AR_PYTHON})")
