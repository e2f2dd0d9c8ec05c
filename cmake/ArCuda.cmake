# Decides whether the CUDA layer is built. MNNVL_AR_CUDA=AUTO builds it when a CUDA compiler is found;
# everything else builds and tests without one, and GPU tests then report themselves skipped.
set(AR_HAVE_CUDA OFF)
if(NOT MNNVL_AR_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    # Hopper (H100/H200) unless the user chose; set before enable_language so CMake does not pick its own.
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(AR_HAVE_CUDA ON)
  elseif(MNNVL_AR_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MNNVL_AR_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER or PATH)")
  endif()
endif()
message(STATUS "mnnvl-ar: CUDA layer ${AR_HAVE_CUDA} (MNNVL_AR_CUDA=${MNNVL_AR_CUDA})")
