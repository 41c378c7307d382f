# Every dependency is found on the system (apt packages on Debian/Ubuntu); nothing is
# downloaded at configure time because the CUDA machine has no network.
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_package(LAPACK REQUIRED)  # OpenBLAS carries LAPACK (gta analyze: dsyevd)
find_path(GTA_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas x86_64-linux-gnu/openblas-pthread REQUIRED)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(OpenSSL REQUIRED COMPONENTS Crypto)  # SHA-256 (libcrypto; HDF5 links it too)
find_package(yaml-cpp REQUIRED)
find_package(fmt REQUIRED)
find_package(spdlog REQUIRED)
find_package(CLI11 REQUIRED)
find_package(nlohmann_json REQUIRED)
# TensorBoard event files: the messages through protobuf's lite runtime, the records' CRC-32C
# through Boost.CRC (header-only).
find_package(Protobuf REQUIRED)
find_package(Boost 1.74 REQUIRED)
# Debian's and Ubuntu's libsentencepiece carry a protobuf of their own (3.14 in Debian 12) and
# export its symbols; with a shared libprotobuf of another version in the same process, one side's
# generated code meets the other side's runtime and its version check aborts. So the runtime is
# linked statically, ahead of SentencePiece, and its symbols are not exported (--exclude-libs):
# gta's messages use this copy, SentencePiece keeps its own.
find_library(GTA_PROTOBUF_LITE_STATIC libprotobuf-lite.a REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
find_library(GTA_SENTENCEPIECE_TRAIN sentencepiece_train REQUIRED)
if(GTA_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

add_library(gta_deps INTERFACE)
target_include_directories(gta_deps INTERFACE ${GTA_CBLAS_INCLUDE} ${HDF5_INCLUDE_DIRS})
target_link_libraries(gta_deps INTERFACE
  Threads::Threads OpenMP::OpenMP_CXX BLAS::BLAS LAPACK::LAPACK MPI::MPI_CXX ${HDF5_C_LIBRARIES}
  OpenSSL::Crypto yaml-cpp fmt::fmt spdlog::spdlog CLI11::CLI11 nlohmann_json::nlohmann_json Boost::headers
  ${GTA_PROTOBUF_LITE_STATIC} PkgConfig::SENTENCEPIECE ${GTA_SENTENCEPIECE_TRAIN})
target_include_directories(gta_deps INTERFACE ${Protobuf_INCLUDE_DIRS})
target_link_options(gta_deps INTERFACE "LINKER:--exclude-libs,libprotobuf-lite.a")

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
