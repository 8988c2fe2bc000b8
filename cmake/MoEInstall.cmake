# Installation and the exported package, so that a downstream project can
#   find_package(MoEMLIR REQUIRED CONFIG)
#   target_link_libraries(my-tool PRIVATE MoEMLIR::MLIRMoEDialect)
include(CMakePackageConfigHelpers)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/moe
                  ${PROJECT_SOURCE_DIR}/include/moe-c
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT moe-headers
        FILES_MATCHING PATTERN "*.h" PATTERN "*.td")
install(DIRECTORY ${PROJECT_BINARY_DIR}/include/moe
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        COMPONENT moe-headers
        FILES_MATCHING PATTERN "*.inc")

install(TARGETS MLIRMoEDialect MLIRMoETransforms MLIRMoEUtils MLIRMoEToLoops MLIRMoEToGPU
                MLIRMoEPipelines MoECAPI
        EXPORT MoEMLIRTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS moe-opt RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS MoEPlugin LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})

install(EXPORT MoEMLIRTargets
        NAMESPACE MoEMLIR::
        DESTINATION ${MOE_INSTALL_CMAKE_DIR})

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/MoEMLIRConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/MoEMLIRConfig.cmake
  INSTALL_DESTINATION ${MOE_INSTALL_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/MoEMLIRConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/MoEMLIRConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/MoEMLIRConfigVersion.cmake
        DESTINATION ${MOE_INSTALL_CMAKE_DIR})

# Installed tools find libMLIR.so in the toolchain they were built against.
set_target_properties(moe-opt MoEPlugin PROPERTIES
  INSTALL_RPATH "\$ORIGIN/../${CMAKE_INSTALL_LIBDIR};${LLVM_LIBRARY_DIR}")
