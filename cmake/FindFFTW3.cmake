# FindFFTW3.cmake — locate FFTW 3 (single and double precision) for slimnn.
#
# Uses pkg-config (modules `fftw3f` and `fftw3`) for hints and falls back to a plain
# search of the usual prefixes when pkg-config is not available.
#
# Imported targets (created once, never redefined):
#   FFTW3::fftw3f   single precision (fftwf_* functions)
#   FFTW3::fftw3    double precision (fftw_* functions)
#
# Result variables:
#   FFTW3_FOUND          TRUE when both libraries and fftw3.h were found
#   FFTW3_VERSION        version reported by pkg-config (if known)
#   FFTW3_INCLUDE_DIRS   directory holding fftw3.h
#   FFTW3_LIBRARIES      both libraries
#
# Cache variables: FFTW3_INCLUDE_DIR, FFTW3_FLOAT_LIBRARY, FFTW3_DOUBLE_LIBRARY.

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_FFTW3F QUIET fftw3f)
  pkg_check_modules(PC_FFTW3 QUIET fftw3)
endif()

find_path(FFTW3_INCLUDE_DIR
  NAMES fftw3.h
  HINTS ${PC_FFTW3F_INCLUDEDIR} ${PC_FFTW3F_INCLUDE_DIRS} ${PC_FFTW3_INCLUDEDIR} ${PC_FFTW3_INCLUDE_DIRS})
find_library(FFTW3_FLOAT_LIBRARY
  NAMES fftw3f libfftw3f-3 fftw3f-3
  HINTS ${PC_FFTW3F_LIBDIR} ${PC_FFTW3F_LIBRARY_DIRS})
find_library(FFTW3_DOUBLE_LIBRARY
  NAMES fftw3 libfftw3-3 fftw3-3
  HINTS ${PC_FFTW3_LIBDIR} ${PC_FFTW3_LIBRARY_DIRS})

if(PC_FFTW3_VERSION)
  set(FFTW3_VERSION "${PC_FFTW3_VERSION}")
elseif(PC_FFTW3F_VERSION)
  set(FFTW3_VERSION "${PC_FFTW3F_VERSION}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(FFTW3
  REQUIRED_VARS FFTW3_FLOAT_LIBRARY FFTW3_DOUBLE_LIBRARY FFTW3_INCLUDE_DIR
  VERSION_VAR FFTW3_VERSION)

if(FFTW3_FOUND)
  set(FFTW3_INCLUDE_DIRS "${FFTW3_INCLUDE_DIR}")
  set(FFTW3_LIBRARIES "${FFTW3_FLOAT_LIBRARY}" "${FFTW3_DOUBLE_LIBRARY}")
  if(NOT TARGET FFTW3::fftw3f)
    add_library(FFTW3::fftw3f UNKNOWN IMPORTED)
    set_target_properties(FFTW3::fftw3f PROPERTIES
      IMPORTED_LOCATION "${FFTW3_FLOAT_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${FFTW3_INCLUDE_DIR}")
  endif()
  if(NOT TARGET FFTW3::fftw3)
    add_library(FFTW3::fftw3 UNKNOWN IMPORTED)
    set_target_properties(FFTW3::fftw3 PROPERTIES
      IMPORTED_LOCATION "${FFTW3_DOUBLE_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${FFTW3_INCLUDE_DIR}")
  endif()
endif()

mark_as_advanced(FFTW3_INCLUDE_DIR FFTW3_FLOAT_LIBRARY FFTW3_DOUBLE_LIBRARY)
