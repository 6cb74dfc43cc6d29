# `make uninstall`: removes exactly the files `make install` wrote, as listed
# in install_manifest.txt (with DESTDIR, as install used it), then the
# directories of ward's own that are left empty.
set(manifest install_manifest.txt) # uninstall runs in the build directory
if(NOT EXISTS ${manifest})
  message(FATAL_ERROR "no ${manifest}: nothing was installed from this build directory")
endif()
file(STRINGS ${manifest} files)
foreach(f ${files})
  set(path "$ENV{DESTDIR}${f}")
  if(EXISTS "${path}" OR IS_SYMLINK "${path}")
    message(STATUS "Uninstalling: ${path}")
    file(REMOVE "${path}")
  else()
    message(STATUS "Already gone: ${path}")
  endif()
endforeach()
foreach(d ${WARD_OWN_DIRS})
  set(path "$ENV{DESTDIR}${d}")
  file(GLOB left "${path}/*")
  if(IS_DIRECTORY "${path}" AND NOT left)
    file(REMOVE_RECURSE "${path}")
  endif()
endforeach()
