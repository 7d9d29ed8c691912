# `cmake --install build [--prefix P]`: the library, its headers, pkg-config and CMake package
# files, and the server.
#
#   lib/libcrvm.so.X.Y.Z, libcrvm.so.X -> it, libcrvm.so -> libcrvm.so.X   (SONAME libcrvm.so.X)
#   lib/libcrvm.a
#   include/crvm.h, include/crvm.hpp, include/crvm_values.hpp
#   lib/pkgconfig/crvm.pc                       pkg-config --cflags --libs crvm
#   lib/cmake/crvm/crvmConfig.cmake (+Version)  find_package(crvm) -> crvm::crvm, crvm::crvm_static
#   bin/crvm-server, bin/crvm (the CLI)
#
# The files come from cargo's output for the profile the build type picks (CRVM_PROFILE): a
# Release build, the default, installs cargo's --release build.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CRVM_SONAME "libcrvm.so.${CRVM_VERSION_MAJOR}")
set(CRVM_REALNAME "libcrvm.so.${CRVM_VERSION}")
set(CRVM_STAGE "${CMAKE_CURRENT_BINARY_DIR}/install-stage")
file(MAKE_DIRECTORY "${CRVM_STAGE}")
# The two links of the versioned name; install(FILES) copies links as links.
file(CREATE_LINK "${CRVM_REALNAME}" "${CRVM_STAGE}/${CRVM_SONAME}" SYMBOLIC)
file(CREATE_LINK "${CRVM_SONAME}" "${CRVM_STAGE}/libcrvm.so" SYMBOLIC)

# What Rust's std needs from the system when libcrvm.a is linked statically.
list(TRANSFORM CRVM_STATIC_SYSTEM_LIBS PREPEND "-l" OUTPUT_VARIABLE CRVM_STATIC_DEPS)
list(JOIN CRVM_STATIC_DEPS " " CRVM_STATIC_DEPS)
set(CRVM_STATIC_DEPS "-lpthread -ldl ${CRVM_STATIC_DEPS}")
# From lib/pkgconfig back to the prefix, whatever `--prefix` the install is given.
file(RELATIVE_PATH CRVM_PC_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/p")
string(REGEX REPLACE "/$" "" CRVM_PC_TO_PREFIX "${CRVM_PC_TO_PREFIX}")
configure_file("${CMAKE_CURRENT_LIST_DIR}/crvm.pc.in" "${CRVM_STAGE}/crvm.pc" @ONLY)
file(RELATIVE_PATH CRVM_CMAKE_TO_PREFIX "/p/${CMAKE_INSTALL_LIBDIR}/cmake/crvm" "/p")
string(REGEX REPLACE "/$" "" CRVM_CMAKE_TO_PREFIX "${CRVM_CMAKE_TO_PREFIX}")
configure_file("${CMAKE_CURRENT_LIST_DIR}/crvmConfig.cmake.in"
               "${CRVM_STAGE}/crvmConfig.cmake" @ONLY)
write_basic_package_version_file("${CRVM_STAGE}/crvmConfigVersion.cmake"
  VERSION "${CRVM_VERSION}" COMPATIBILITY SameMajorVersion)

install(FILES "${CRVM_OUT_DIR}/libcrvm.so" DESTINATION "${CMAKE_INSTALL_LIBDIR}"
        RENAME "${CRVM_REALNAME}"
        PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                    WORLD_READ WORLD_EXECUTE)
install(FILES "${CRVM_STAGE}/${CRVM_SONAME}" "${CRVM_STAGE}/libcrvm.so"
              "${CRVM_OUT_DIR}/libcrvm.a"
        DESTINATION "${CMAKE_INSTALL_LIBDIR}")
install(FILES "${CRVM_INCLUDE_DIR}/crvm.h" "${CRVM_INCLUDE_DIR}/crvm.hpp"
              "${CRVM_INCLUDE_DIR}/crvm_values.hpp"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(FILES "${CRVM_STAGE}/crvm.pc" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
install(FILES "${CRVM_STAGE}/crvmConfig.cmake" "${CRVM_STAGE}/crvmConfigVersion.cmake"
        DESTINATION "${CMAKE_INSTALL_LIBDIR}/cmake/crvm")
install(PROGRAMS "${CRVM_SERVER}" "${CRVM_OUT_DIR}/crvm" DESTINATION "${CMAKE_INSTALL_BINDIR}")
