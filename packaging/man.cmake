# Writes one man page by running the built ward binary:
# cmake -DWARD=path/to/ward -DARGS="help;--man" -DOUT=ward.1 -P man.cmake
# (the page is the binary's own rendering of its tables, so it cannot drift).
execute_process(COMMAND ${WARD} ${ARGS} OUTPUT_FILE ${OUT}.tmp RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(REMOVE ${OUT}.tmp)
  message(FATAL_ERROR "ward ${ARGS} failed (${rc})")
endif()
file(RENAME ${OUT}.tmp ${OUT})
