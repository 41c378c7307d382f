# Every dependency is found on the system (apt packages on Debian/Ubuntu); nothing is
# downloaded at configure time because the CUDA machine has no network.
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(GTA_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)  # SHA-256 (libcrypto; HDF5 links it too)
find_package(yaml-cpp REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
find_library(GTA_SENTENCEPIECE_TRAIN sentencepiece_train REQUIRED)
if(GTA_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

add_library(gta_deps INTERFACE)
target_include_directories(gta_deps INTERFACE ${GTA_CBLAS_INCLUDE} ${HDF5_INCLUDE_DIRS})
target_link_libraries(gta_deps INTERFACE
  Threads::Threads OpenMP::OpenMP_CXX BLAS::BLAS MPI::MPI_CXX ${HDF5_C_LIBRARIES}
  OpenSSL::Crypto yaml-cpp fmt::fmt spdlog::spdlog CLI11::CLI11 nlohmann_json::nlohmann_json
  PkgConfig::SENTENCEPIECE ${GTA_SENTENCEPIECE_TRAIN})

if(GTA_WITH_CUDA)
  # NCCL and cuDNN ship no CMake package: look beside the toolkit and in the system paths.
  set(_cuda_hint_libs ${CUDAToolkit_LIBRARY_DIR} ${CUDAToolkit_LIBRARY_ROOT}/lib /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu)
  set(_cuda_hint_incs ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include /usr/include)
  find_library(GTA_NCCL_LIBRARY nccl HINTS ${_cuda_hint_libs} REQUIRED)
  find_path(GTA_NCCL_INCLUDE nccl.h HINTS ${_cuda_hint_incs} REQUIRED)
  find_library(GTA_CUDNN_LIBRARY cudnn HINTS ${_cuda_hint_libs} REQUIRED)
  find_path(GTA_CUDNN_INCLUDE cudnn.h HINTS ${_cuda_hint_incs} REQUIRED)
  add_library(gta_cuda_deps INTERFACE)
  target_include_directories(gta_cuda_deps INTERFACE ${GTA_NCCL_INCLUDE} ${GTA_CUDNN_INCLUDE})
  target_link_libraries(gta_cuda_deps INTERFACE CUDA::cudart CUDA::cublas CUDA::cublasLt
    ${GTA_NCCL_LIBRARY} ${GTA_CUDNN_LIBRARY})
  message(STATUS "gta: CUDA ${CUDAToolkit_VERSION}, archs ${CMAKE_CUDA_ARCHITECTURES}, NCCL ${GTA_NCCL_LIBRARY}, cuDNN ${GTA_CUDNN_LIBRARY}")
endif()
