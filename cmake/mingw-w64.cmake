# Cross build for 64-bit Windows with Debian's MinGW-w64 (posix thread
# model, for std::thread and friends), linked statically so that the .exe
# files need no DLL beside Windows' own. Used by scripts/windows-check:
#
#   cmake -B build-windows -DCMAKE_TOOLCHAIN_FILE=cmake/mingw-w64.cmake \
#         -DOPENSSL_ROOT_DIR=$(scripts/windows-openssl)
#
# Only MinGW's own folders, OpenSSL's and a staging folder of header-only
# libraries (cmake/mingw-w64-deps.cmake) are searched: never the build
# machine's /usr/include, whose headers and libraries are for Linux.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(mingw_triple x86_64-w64-mingw32)

set(CMAKE_C_COMPILER ${mingw_triple}-gcc-posix)
set(CMAKE_CXX_COMPILER ${mingw_triple}-g++-posix)
set(CMAKE_RC_COMPILER ${mingw_triple}-windres)

set(CMAKE_FIND_ROOT_PATH /usr/${mingw_triple})
if(OPENSSL_ROOT_DIR)
    list(APPEND CMAKE_FIND_ROOT_PATH ${OPENSSL_ROOT_DIR})
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(OPENSSL_USE_STATIC_LIBS TRUE)

# libgcc, libstdc++ and winpthread inside each .exe.
set(CMAKE_EXE_LINKER_FLAGS_INIT -static)

# Tests, and doctest's discovery of them, run under Wine.
set(CMAKE_CROSSCOMPILING_EMULATOR
    ${CMAKE_CURRENT_LIST_DIR}/../scripts/wine-run)

# Header-only libraries, staged once the project starts.
set(CMAKE_PROJECT_cloudproto_INCLUDE
    ${CMAKE_CURRENT_LIST_DIR}/mingw-w64-deps.cmake)
