# Toolchain file: cross-compile for aarch64 Linux with Debian's
# gcc-aarch64-linux-gnu (sysroot /usr/aarch64-linux-gnu). Programs built
# with it run here under qemu-user (CMAKE_CROSSCOMPILING_EMULATOR).
#   cmake -S tests/cross -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake ...
# QKC_CROSS_CC and QKC_CROSS_SYSROOT (cache variables) override the
# compiler and the sysroot.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(QKC_CROSS_CC aarch64-linux-gnu-gcc CACHE STRING "C cross-compiler for aarch64")
set(QKC_CROSS_SYSROOT /usr/aarch64-linux-gnu CACHE PATH "aarch64 sysroot (libc) for the compiler and qemu")
set(CMAKE_C_COMPILER ${QKC_CROSS_CC})
set(CMAKE_FIND_ROOT_PATH ${QKC_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L ${QKC_CROSS_SYSROOT})
