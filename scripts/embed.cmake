# embed.cmake: turns text into a C string (const char SYMBOL_source[]) plus
# SYMBOL_name (NAME, or the input's base name), so the compiler carries its
# standard library and runtime sources without needing an install tree.
#
# INPUT is one file, or a list of parts joined in the given order into one
# text (the runtime, runtime/rt/*.c, and the training driver are kept as small
# files in the tree but reach emitted programs as one file each). When joining,
# each part's first comment (its header for readers of the tree, up to the
# first "*/" line) and the blank line after it are dropped, and parts are
# separated by one blank line. JOINED, if given, also receives the joined text
# (the compiler library compiles the runtime from it, so it tests the bytes
# that emitted programs get).
#
# BINARY (one input): the file's bytes as const unsigned char SYMBOL[] and
# its length SYMBOL_size (the LLVM backend's kernels as bitcode).
if(BINARY)
  file(READ ${INPUT} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  file(WRITE ${OUTPUT} "/* generated from ${INPUT} by scripts/embed.cmake */\n"
    "const unsigned char ${SYMBOL}[] = {${bytes}};\n"
    "const unsigned long ${SYMBOL}_size = sizeof ${SYMBOL};\n")
  return()
endif()
list(LENGTH INPUT n_parts)
set(content "")
foreach(part IN LISTS INPUT)
  file(READ ${part} text)
  if(n_parts GREATER 1)
    string(FIND "${text}" "*/\n" end)
    if(NOT text MATCHES "^/\\*" OR end EQUAL -1)
      message(FATAL_ERROR "${part}: a joined part must start with its header comment")
    endif()
    math(EXPR end "${end} + 3")
    string(SUBSTRING "${text}" ${end} -1 text)
    string(REGEX REPLACE "^\n" "" text "${text}")
    if(NOT content STREQUAL "")
      string(APPEND content "\n")
    endif()
  endif()
  string(APPEND content "${text}")
endforeach()
if(NOT NAME)
  get_filename_component(NAME ${INPUT} NAME)
endif()
if(JOINED)
  file(WRITE ${JOINED} "${content}")
endif()
# hex via a scratch file: file(READ ... HEX) is the one byte-exact conversion
file(WRITE ${OUTPUT}.txt "${content}")
file(READ ${OUTPUT}.txt hex HEX)
file(REMOVE ${OUTPUT}.txt)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUTPUT} "/* generated from ${NAME} by scripts/embed.cmake */\n"
  "const char ${SYMBOL}_source[] = {${bytes} 0x00};\n"
  "const char ${SYMBOL}_name[] = \"${NAME}\";\n")
