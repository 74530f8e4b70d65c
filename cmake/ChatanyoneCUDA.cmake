# CUDA detection for chatanyone.
#
# CHATANYONE_CUDA = AUTO | ON | OFF
#   AUTO: build the CUDA kernels wherever a working nvcc is found (CI machines have one, so the
#         CUDA code compiles in every CI run), else build CPU only with a status message.
#   ON:   a missing or broken nvcc is a hard error (so a GPU build never silently loses CUDA).
#   OFF:  never look for CUDA.
# Sets CHATANYONE_WITH_CUDA to TRUE/FALSE and, when TRUE, enables the CUDA language.

set(CHATANYONE_CUDA "AUTO" CACHE STRING "Build the CUDA kernels: AUTO, ON or OFF")
set_property(CACHE CHATANYONE_CUDA PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${CHATANYONE_CUDA}" _ca_cuda)

# Turing (75) to Hopper (90) as SASS, plus compute_90 PTX so newer GPUs JIT-compile the kernels.
# Never "native": it fails on a build machine without a GPU (colmap#2807, llama.cpp#18413).
set(CHATANYONE_CUDA_ARCHITECTURES "75-real;80-real;86-real;89-real;90-real;90-virtual"
    CACHE STRING "CUDA architectures to compile for (explicit list, never native)")

set(CHATANYONE_WITH_CUDA FALSE)
if(_ca_cuda STREQUAL "OFF")
  message(STATUS "chatanyone: CUDA disabled (CHATANYONE_CUDA=OFF)")
elseif(_ca_cuda STREQUAL "ON" OR _ca_cuda STREQUAL "AUTO")
  # Unless the user said which nvcc (CMAKE_CUDA_COMPILER or CUDACXX), take the one on PATH, else
  # the usual /usr/local/cuda (often installed but not on PATH). Passed through CUDACXX, not
  # CMAKE_CUDA_COMPILER, so that check_language still test-compiles with it.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(_ca_nvcc nvcc NO_CACHE)
    if(NOT _ca_nvcc)
      find_program(_ca_nvcc nvcc PATHS /usr/local/cuda/bin NO_DEFAULT_PATH NO_CACHE)
    endif()
    if(_ca_nvcc)
      set(ENV{CUDACXX} "${_ca_nvcc}")
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)  # test-compiles a CUDA file: a present but broken nvcc counts as missing
  if(CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_ARCHITECTURES "${CHATANYONE_CUDA_ARCHITECTURES}")
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CHATANYONE_WITH_CUDA TRUE)
    message(STATUS "chatanyone: CUDA ${CMAKE_CUDA_COMPILER_VERSION} kernels for ${CMAKE_CUDA_ARCHITECTURES}")
  elseif(_ca_cuda STREQUAL "ON")
    message(FATAL_ERROR "chatanyone: CHATANYONE_CUDA=ON but no working nvcc was found. Put nvcc on PATH "
                        "(or set CUDACXX), or build with CHATANYONE_CUDA=AUTO/OFF for a CPU-only build.")
  else()
    message(STATUS "chatanyone: no working nvcc found, building CPU kernels only (CHATANYONE_CUDA=AUTO)")
  endif()
else()
  message(FATAL_ERROR "chatanyone: CHATANYONE_CUDA must be AUTO, ON or OFF, got '${CHATANYONE_CUDA}'")
endif()
