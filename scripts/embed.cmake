# embed.cmake: turns a text file into a C string (const char SYMBOL[]) plus
# SYMBOL_name (the file's base name), so the compiler carries its standard
# library and runtime sources without needing an install tree.
file(READ ${INPUT} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
get_filename_component(base ${INPUT} NAME)
file(WRITE ${OUTPUT} "/* generated from ${base} by scripts/embed.cmake */\n"
  "const char ${SYMBOL}_source[] = {${bytes} 0x00};\n"
  "const char ${SYMBOL}_name[] = \"${base}\";\n")
