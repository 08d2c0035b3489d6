# etch_docs.cmake: writes the man page and the bash completion script by
# running the built tool (`etch help --man`, `etch help --bash-completion`),
# so both come from the tool's own command and option tables.
# Run as: cmake -DETCH=<tool> -DMAN=<etch.1> -DCOMPLETION=<etch> -P etch_docs.cmake
foreach(pair "--man;${MAN}" "--bash-completion;${COMPLETION}")
  list(GET pair 0 flag)
  list(GET pair 1 out)
  execute_process(COMMAND "${ETCH}" help ${flag} OUTPUT_FILE "${out}.tmp" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "'${ETCH} help ${flag}' failed: ${rc}")
  endif()
  file(RENAME "${out}.tmp" "${out}")
endforeach()
