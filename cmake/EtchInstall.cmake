# EtchInstall.cmake: what `cmake --install` puts under the prefix, and the
# generated documents that go with it:
#   bin/etch                                   the compiler (needs no other file)
#   lib/etch/libetch_llvm.so                   its llvm backend, when built (loaded by --backend llvm)
#   include/etch/etch_rt.h, lib/libetch_runtime.a   the runtime emitted code calls
#   share/etch/nn.etch                         the standard library (also built into etch)
#   share/etch/runtime/                        the joined runtime and driver sources
#   share/man/man1/etch.1                      from `etch help --man`
#   share/bash-completion/completions/etch     from `etch help --bash-completion`
#   lib/cmake/etch/                            etchConfig.cmake: etch::etch, etch::runtime, etch_add_model()
#   lib/pkgconfig/etch-runtime.pc
# As a subproject nothing is installed unless ETCH_INSTALL is set.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(ETCH_DOCS_DIR ${PROJECT_BINARY_DIR}/docs)
add_custom_command(
  OUTPUT ${ETCH_DOCS_DIR}/etch.1 ${ETCH_DOCS_DIR}/etch
  COMMAND ${CMAKE_COMMAND} -E make_directory ${ETCH_DOCS_DIR}
  COMMAND ${CMAKE_COMMAND} -DETCH=$<TARGET_FILE:etch> -DMAN=${ETCH_DOCS_DIR}/etch.1 -DCOMPLETION=${ETCH_DOCS_DIR}/etch
          -P ${PROJECT_SOURCE_DIR}/cmake/etch_docs.cmake
  DEPENDS etch ${PROJECT_SOURCE_DIR}/cmake/etch_docs.cmake
  COMMENT "Writing etch.1 and the bash completion"
  VERBATIM)
add_custom_target(etch_docs ALL DEPENDS ${ETCH_DOCS_DIR}/etch.1 ${ETCH_DOCS_DIR}/etch)

if(CMAKE_SOURCE_DIR STREQUAL PROJECT_SOURCE_DIR)
  option(ETCH_INSTALL "Install etch with 'cmake --install'" ON)
else()
  option(ETCH_INSTALL "Install etch with 'cmake --install'" OFF)
endif()
if(NOT ETCH_INSTALL)
  return()
endif()

set(ETCH_INSTALL_DATADIR ${CMAKE_INSTALL_DATADIR}/etch)
set(ETCH_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/etch)
install(TARGETS etch etch_runtime EXPORT etchTargets
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${PROJECT_SOURCE_DIR}/runtime/etch_rt.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/etch)
if(ETCH_HAVE_LLVM) # the llvm backend, loaded by `etch run --backend llvm` (docs/llvm.md)
  install(TARGETS etch_codegen_llvm LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/etch)
endif()
install(FILES ${PROJECT_SOURCE_DIR}/frontend/stdlib/nn.etch DESTINATION ${ETCH_INSTALL_DATADIR})
install(FILES ${EMBED_DIR}/etch_rt.c ${EMBED_DIR}/infer_main.c ${EMBED_DIR}/train_main.c
        DESTINATION ${ETCH_INSTALL_DATADIR}/runtime)
install(FILES ${ETCH_DOCS_DIR}/etch.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${ETCH_DOCS_DIR}/etch DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)

install(EXPORT etchTargets NAMESPACE etch:: DESTINATION ${ETCH_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/etchConfig.cmake.in ${PROJECT_BINARY_DIR}/etchConfig.cmake
                              INSTALL_DESTINATION ${ETCH_INSTALL_CMAKEDIR} PATH_VARS ETCH_INSTALL_DATADIR)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/etchConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/etchConfig.cmake ${PROJECT_BINARY_DIR}/etchConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/EtchAddModel.cmake DESTINATION ${ETCH_INSTALL_CMAKEDIR})
configure_file(${PROJECT_SOURCE_DIR}/cmake/etch-runtime.pc.in ${PROJECT_BINARY_DIR}/etch-runtime.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/etch-runtime.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
