# ctest no_libcurl_needed: pacer must not be linked to libcurl (runner/
# curlshim.c loads it on the first curl call, see docs/http.md), so that a
# run without HTTP does not pay for mapping it and its ~35 dependencies.
# Run in script mode with -DBINARY=path/to/pacer -DREADELF=path/to/readelf.
if(NOT READELF)
  message(FATAL_ERROR "readelf not found (binutils)")
endif()
execute_process(COMMAND ${READELF} -d ${BINARY} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT out MATCHES "NEEDED")
  message(FATAL_ERROR "readelf -d ${BINARY} failed or shows no NEEDED entries:\n${out}")
endif()
if(out MATCHES "NEEDED[^\n]*libcurl")
  message(FATAL_ERROR "${BINARY} is linked to libcurl:\n${out}")
endif()
message(STATUS "${BINARY}: no libcurl in DT_NEEDED")
