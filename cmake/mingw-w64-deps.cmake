# The header-only libraries of the MinGW build, taken from the build
# machine's Debian packages (libasio-dev, libfmt-dev, libtomlplusplus-dev,
# doctest-dev): each one's own folder is copied into a staging folder, so
# that /usr/include as a whole never reaches MinGW's include path. fmt and
# toml++ are used header-only, since Debian's compiled ones are for Linux.
# Included by project(cloudproto) through cmake/mingw-w64.cmake; it then
# answers the project's find_package() calls with these targets.
set(CLOUDPROTO_HOST_INCLUDE /usr/include CACHE PATH
    "where the build machine's header-only libraries are")
set(stage ${CMAKE_BINARY_DIR}/mingw-w64-deps)

foreach(item asio asio.hpp fmt toml++ doctest)
    if(NOT EXISTS ${CLOUDPROTO_HOST_INCLUDE}/${item})
        message(FATAL_ERROR "${CLOUDPROTO_HOST_INCLUDE}/${item} is missing:"
            " run scripts/install-deps")
    endif()
    file(COPY ${CLOUDPROTO_HOST_INCLUDE}/${item}
        DESTINATION ${stage}/include)
endforeach()
set(ASIO_INCLUDE_DIR ${stage}/include CACHE PATH "asio, staged" FORCE)

# One small package configuration each, found through <name>_DIR.
function(cloudproto_stage_package name target definitions)
    set(dir ${stage}/cmake/${name})
    file(WRITE ${dir}/${name}Config.cmake
"if(NOT TARGET ${target})
    add_library(${target} INTERFACE IMPORTED)
    set_target_properties(${target} PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES \"${stage}/include\"
        INTERFACE_COMPILE_DEFINITIONS \"${definitions}\")
endif()
")
    set(${name}_DIR ${dir} CACHE PATH "${name}, staged" FORCE)
endfunction()
cloudproto_stage_package(fmt fmt::fmt FMT_HEADER_ONLY=1)
cloudproto_stage_package(tomlplusplus tomlplusplus::tomlplusplus
    TOML_HEADER_ONLY=1)
cloudproto_stage_package(doctest doctest::doctest "")

# doctest_discover_tests() itself is a CMake script: the host's one.
find_file(CLOUDPROTO_HOST_DOCTEST_CMAKE doctest.cmake
    PATHS /usr/lib/cmake/doctest /usr/share/doctest/cmake
    NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH REQUIRED)
file(WRITE ${stage}/cmake/doctest/doctest.cmake
    "include(\"${CLOUDPROTO_HOST_DOCTEST_CMAKE}\")\n")
