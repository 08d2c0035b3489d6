# EtchAddModel.cmake: etch_add_model(), the build rule that turns a model
# source (.etch) into a static library. Included by the installed
# etchConfig.cmake and by etch's own CMakeLists.txt (so it works through
# add_subdirectory too); both provide etch::etch (the tool) and etch::runtime
# (the runtime library the generated code calls).
#
#   etch_add_model(<name> SOURCE model.etch
#                  [DEFINES B=1 ...] [WEIGHTS w.safetensors] [EMBED_WEIGHTS]
#                  [QUANTIZE int8 CALIB stats.json] [THREADS N]
#                  [TRAIN] [OPT 0|1|2] [PREFIX c_name] [TARGET_BACKEND c])
#
# At build time `etch build --c-only` writes model.c, model.h, etch_rt.c and
# etch_rt.h (and <Model>.safetensors, or with EMBED_WEIGHTS <prefix>_weights.bin) into
# ${CMAKE_CURRENT_BINARY_DIR}/etch_models/<name>/; the command reruns when the
# source, the weights, the calibration file or the etch binary change. <name> is a static library of
# model.c linked to etch::runtime; its C names start with PREFIX (default
# <name>, made a C identifier): <prefix>_forward, <prefix>_load, ... A
# program includes "model.h", or "<name>/model.h" when it uses several
# models. The folder is the target property ETCH_MODEL_DIR and the variable
# <name>_ETCH_DIR. docs/c-api.md documents the generated API.
include_guard(GLOBAL)

function(etch_add_model name)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "EMBED_WEIGHTS;TRAIN" "SOURCE;WEIGHTS;OPT;PREFIX;TARGET_BACKEND;QUANTIZE;CALIB;THREADS"
                        "DEFINES")
  set(where "etch_add_model(${name})")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "${where}: unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_SOURCE)
    message(FATAL_ERROR "${where}: SOURCE model.etch is required")
  endif()
  if(DEFINED ARG_QUANTIZE AND NOT ARG_QUANTIZE STREQUAL "int8")
    message(FATAL_ERROR "${where}: QUANTIZE takes int8, got '${ARG_QUANTIZE}'")
  endif()
  if(DEFINED ARG_QUANTIZE AND NOT ARG_CALIB)
    message(FATAL_ERROR "${where}: QUANTIZE int8 needs CALIB stats.json (from etch calibrate)")
  endif()
  if(DEFINED ARG_CALIB AND NOT DEFINED ARG_QUANTIZE)
    message(FATAL_ERROR "${where}: CALIB is for QUANTIZE int8")
  endif()
  if(DEFINED ARG_QUANTIZE AND ARG_TRAIN)
    message(FATAL_ERROR "${where}: QUANTIZE int8 builds inference only: no TRAIN")
  endif()
  if(DEFINED ARG_TARGET_BACKEND AND ARG_TARGET_BACKEND STREQUAL "cuda")
    message(FATAL_ERROR "${where}: TARGET_BACKEND cuda: the CUDA backend is not built yet (etch issue 12); use c")
  elseif(DEFINED ARG_TARGET_BACKEND AND NOT ARG_TARGET_BACKEND STREQUAL "c")
    message(FATAL_ERROR "${where}: TARGET_BACKEND takes c or cuda, got '${ARG_TARGET_BACKEND}'")
  endif()
  if(DEFINED ARG_THREADS AND (NOT ARG_THREADS MATCHES "^[1-9][0-9]*$" OR ARG_THREADS GREATER 1024))
    message(FATAL_ERROR "${where}: THREADS takes a count (1 to 1024), got '${ARG_THREADS}'")
  endif()
  if(ARG_TRAIN AND ARG_EMBED_WEIGHTS)
    message(FATAL_ERROR "${where}: TRAIN cannot be combined with EMBED_WEIGHTS (training updates the weights)")
  endif()
  if(NOT TARGET etch::etch OR NOT TARGET etch::runtime)
    message(FATAL_ERROR "${where}: etch::etch and etch::runtime are missing: find_package(etch) or add_subdirectory(etch) first")
  endif()

  set(prefix "${ARG_PREFIX}")
  if(NOT prefix)
    string(MAKE_C_IDENTIFIER "${name}" prefix)
  endif()
  get_filename_component(source "${ARG_SOURCE}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/etch_models/${name}")
  set(args build "${source}" -o "${dir}" --c-only --prefix "${prefix}")
  foreach(define IN LISTS ARG_DEFINES)
    list(APPEND args -D "${define}")
  endforeach()
  set(depends "${source}")
  if(ARG_WEIGHTS)
    get_filename_component(weights "${ARG_WEIGHTS}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND args --weights "${weights}")
    list(APPEND depends "${weights}")
  endif()
  if(ARG_EMBED_WEIGHTS)
    list(APPEND args --embed-weights)
  endif()
  if(ARG_TRAIN)
    list(APPEND args --train)
  endif()
  if(DEFINED ARG_QUANTIZE)
    get_filename_component(calib "${ARG_CALIB}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND args --quantize int8 --calib "${calib}")
    list(APPEND depends "${calib}")
  endif()
  set(threads 1)
  if(DEFINED ARG_THREADS)
    set(threads ${ARG_THREADS})
    list(APPEND args --threads ${ARG_THREADS})
  endif()
  if(DEFINED ARG_OPT)
    if(NOT ARG_OPT MATCHES "^[012]$")
      message(FATAL_ERROR "${where}: OPT takes 0, 1 or 2, got '${ARG_OPT}'")
    endif()
    list(APPEND args -O${ARG_OPT})
  endif()

  # The tool: the in-tree target when etch is a subproject (built first, and
  # a rebuilt etch regenerates the model), else the installed executable.
  get_target_property(tool etch::etch ALIASED_TARGET)
  if(NOT tool)
    set(tool etch::etch)
  endif()
  set(outputs "${dir}/model.c" "${dir}/model.h" "${dir}/etch_rt.c" "${dir}/etch_rt.h")
  if(ARG_EMBED_WEIGHTS) # the weights as one binary file that model.c assembles in (.incbin)
    list(APPEND outputs "${dir}/${prefix}_weights.bin")
  endif()
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${tool} ${args}
    DEPENDS ${depends} ${tool} "$<TARGET_FILE:${tool}>"
    COMMENT "etch: compiling model ${name} from ${ARG_SOURCE}"
    VERBATIM)

  add_library(${name} STATIC "${dir}/model.c" "${dir}/model.h")
  target_include_directories(${name} PUBLIC "${dir}" "${CMAKE_CURRENT_BINARY_DIR}/etch_models")
  target_link_libraries(${name} PUBLIC etch::runtime)
  if(threads GREATER 1) # kernels split over threads with pthreads
    find_package(Threads REQUIRED)
    target_link_libraries(${name} PUBLIC Threads::Threads)
  endif()
  # The flags etch compiles emitted code with itself (codegen/build.h).
  target_compile_options(${name} PRIVATE $<$<C_COMPILER_ID:GNU,Clang,AppleClang>:-O3 -ffp-contract=fast -fopenmp-simd>)
  target_compile_definitions(${name} PRIVATE _POSIX_C_SOURCE=200809L)
  if(ARG_EMBED_WEIGHTS) # the assembler finds the blob in the model's folder; new weights rebuild model.c
    target_compile_options(${name} PRIVATE "-Wa,-I${dir}")
    set_source_files_properties("${dir}/model.c" PROPERTIES OBJECT_DEPENDS "${dir}/${prefix}_weights.bin")
  endif()
  set_target_properties(${name} PROPERTIES ETCH_MODEL_DIR "${dir}" ETCH_PREFIX "${prefix}" LINKER_LANGUAGE C)
  set(${name}_ETCH_DIR "${dir}" PARENT_SCOPE)
endfunction()
