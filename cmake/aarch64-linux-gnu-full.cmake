# Toolchain file for the whole project (the top CMakeLists.txt: libqkc with
# its LLVM JIT, the tool, the tests) built for aarch64 Linux on an x86-64
# Debian 12 machine: Debian's gcc/g++-aarch64-linux-gnu with their libc
# (/usr/aarch64-linux-gnu), plus a sysroot of arm64 libraries — libLLVM-19
# and its dependencies, cmocka, jansson — that scripts/aarch64-sysroot.sh
# unpacks from Debian's arm64 packages. The LLVM C headers are the host's
# (llvm-c/ is the same for every architecture; qkc initialises its targets
# by name, never through the LLVM_NATIVE_* macros of llvm-config.h); the
# library is the sysroot's. Programs run under qemu-aarch64
# (CMAKE_CROSSCOMPILING_EMULATOR: ctest runs the tests through it) with
# -cpu max, so host detection (targets/aarch64.c) sees dotprod and i8mm.
#
#   sh scripts/aarch64-sysroot.sh
#   cmake -G Ninja -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu-full.cmake
#   ninja -C build-aarch64 && ctest --test-dir build-aarch64 -R '^test_'
#
# Cache variables: QKC_AARCH64_SYSROOT (the arm64 libraries, default as
# scripts/aarch64-sysroot.sh), QKC_CROSS_CC/CXX, QKC_CROSS_SYSROOT (libc),
# QKC_QEMU and QKC_QEMU_CPU.
include(${CMAKE_CURRENT_LIST_DIR}/aarch64-linux-gnu.cmake)

if(DEFINED ENV{QKC_AARCH64_SYSROOT})
  set(qkc_sysroot_default "$ENV{QKC_AARCH64_SYSROOT}")
elseif(DEFINED ENV{XDG_CACHE_HOME})
  set(qkc_sysroot_default "$ENV{XDG_CACHE_HOME}/qkc-aarch64-sysroot")
else()
  set(qkc_sysroot_default "$ENV{HOME}/.cache/qkc-aarch64-sysroot")
endif()
set(QKC_AARCH64_SYSROOT "${qkc_sysroot_default}" CACHE PATH "arm64 libraries (scripts/aarch64-sysroot.sh)")
set(QKC_CROSS_CXX aarch64-linux-gnu-g++ CACHE STRING "C++ cross-compiler for aarch64")
set(QKC_QEMU qemu-aarch64 CACHE STRING "qemu-user for aarch64")
set(QKC_QEMU_CPU max CACHE STRING "the CPU qemu emulates (max: dotprod, i8mm, bf16, fp16)")
set(CMAKE_CXX_COMPILER ${QKC_CROSS_CXX})

set(qkc_arm64_lib ${QKC_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu)
if(NOT EXISTS ${qkc_arm64_lib}/libLLVM.so)
  message(FATAL_ERROR "qkc: no arm64 libLLVM in ${qkc_arm64_lib}: run sh scripts/aarch64-sysroot.sh")
endif()

# Libraries and headers: the cross libc first, then the arm64 sysroot.
set(CMAKE_FIND_ROOT_PATH ${QKC_CROSS_SYSROOT} ${QKC_AARCH64_SYSROOT})
# libLLVM's own dependencies (libstdc++, z3, xml2, icu, ...) are found at
# link time through -rpath-link, at run time through qemu's LD_LIBRARY_PATH.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,-rpath-link,${qkc_arm64_lib} -Wl,-rpath-link,${QKC_AARCH64_SYSROOT}/lib/aarch64-linux-gnu")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${CMAKE_EXE_LINKER_FLAGS_INIT}")
# The top CMakeLists.txt takes this as its libLLVM (find_library keeps a
# cache entry that is already set); llvm-config-19 (the host's) still
# gives the headers.
set(QKC_LLVM_SHARED ${qkc_arm64_lib}/libLLVM.so CACHE FILEPATH "libLLVM for aarch64")
# pkg-config (cmocka, jansson) reads the sysroot's .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} "${qkc_arm64_lib}/pkgconfig:${QKC_AARCH64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${QKC_AARCH64_SYSROOT}")
set(ENV{PKG_CONFIG_PATH} "")

# At run time the loader, libc and everything else come from the sysroot
# (Debian's libc6:arm64): the cross toolchain's libc (libc6-arm64-cross)
# is another build of glibc 2.36, and its ld.so with the sysroot's libc.so.6
# hangs. -E sets the guest's environment only.
set(CMAKE_CROSSCOMPILING_EMULATOR ${QKC_QEMU} -L ${QKC_AARCH64_SYSROOT} -cpu ${QKC_QEMU_CPU}
    -E LD_LIBRARY_PATH=${qkc_arm64_lib}:${QKC_AARCH64_SYSROOT}/lib/aarch64-linux-gnu)
