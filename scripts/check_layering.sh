#!/usr/bin/env bash
# check_layering.sh: every #include "..." in the compiler's sources must point
# at its own layer or one below it. The layers, lowest first:
#
#   runtime   the runtime emitted programs link (libc only): includes nothing of etch
#   ir        the graph, the op table and its meaning          -> runtime
#   passes    graph -> graph transforms and the -O pipeline    -> ir, runtime
#   frontend  DSL -> IR                                        -> passes, ir, runtime
#   codegen   IR -> target source (codegen/c) or ONNX (codegen/onnx) -> passes, ir, runtime
#   tool      the `etch` command line                          -> everything
#
# frontend and codegen are siblings: neither includes the other. Quoted
# includes are resolved as the compiler does: relative to the including file
# first, then to the repository root.
#
# The CMake libraries, one per layer (etch_runtime, etch_ir, etch_passes,
# etch_frontend, etch_codegen_<backend>, and the tool `etch`), state the same
# direction in their link lines, and the second half of this check holds
# ROOT/CMakeLists.txt to it: a layer's target_link_libraries names only its
# own layer's libraries or lower ones, and each etch_layer(TARGET FOLDER...)
# globs only folders of TARGET's layer. Both halves are needed: the includes
# catch header-only use, which no link line sees; the link lines catch a
# library that would let an upward call link (and the static link order hide
# it or fail late).
#
#   scripts/check_layering.sh [ROOT]    exit 0 when clean, 1 listing each violation
set -euo pipefail
root=$(cd "${1:-$(dirname "$0")/..}" && pwd)

allowed() { # allowed LAYER TARGET_LAYER
  case "$1:$2" in
    runtime:runtime) return 0 ;;
    ir:ir | ir:runtime) return 0 ;;
    passes:passes | passes:ir | passes:runtime) return 0 ;;
    frontend:frontend | frontend:passes | frontend:ir | frontend:runtime) return 0 ;;
    codegen:codegen | codegen:passes | codegen:ir | codegen:runtime) return 0 ;;
    tool:*) return 0 ;;
  esac
  return 1
}

layer_of() { # layer_of PATH_RELATIVE_TO_ROOT: sets LAYER to its layer, or empty
  case "$1" in
    runtime/*) LAYER=runtime ;; ir/*) LAYER=ir ;; passes/*) LAYER=passes ;;
    frontend/*) LAYER=frontend ;; codegen/*) LAYER=codegen ;; tool/*) LAYER=tool ;;
    *) LAYER="" ;;
  esac
}

normalize() { # normalize a/b/../c: sets NORM to a/c (no symlinks in the tree; no subshell per include)
  local IFS=/ part out=()
  for part in $1; do
    case "$part" in
      "" | .) ;;
      ..) ((${#out[@]})) && unset 'out[${#out[@]}-1]' || out=(..) ;;
      *) out+=("$part") ;;
    esac
  done
  NORM="${out[*]}"
}

bad=0
checked=0
while IFS= read -r file; do
  rel=${file#"$root"/}
  layer_of "$rel"; from=$LAYER
  [ -n "$from" ] || continue
  dir=${file%/*}
  lineno=0
  while IFS= read -r line; do
    lineno=$((lineno + 1))
    [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]] || continue
    inc=${BASH_REMATCH[1]}
    checked=$((checked + 1))
    if [ -e "$dir/$inc" ]; then normalize "${dir#"$root"/}/$inc"; else normalize "$inc"; fi
    layer_of "$NORM"; to=$LAYER
    [ -n "$to" ] || continue
    if ! allowed "$from" "$to"; then
      echo "$rel:$lineno: error: layer '$from' includes \"$inc\" from layer '$to' above it or beside it"
      bad=1
    fi
  done <"$file"
done < <(find "$root/runtime" "$root/ir" "$root/passes" "$root/frontend" "$root/codegen" "$root/tool" \
           -type f \( -name '*.c' -o -name '*.h' -o -name '*.def' \) 2>/dev/null | sort)

layer_of_target() { # layer_of_target CMAKE_TARGET: sets LAYER to the layer it builds, or empty
  case "$1" in
    etch_runtime) LAYER=runtime ;; etch_ir) LAYER=ir ;; etch_passes) LAYER=passes ;;
    etch_frontend) LAYER=frontend ;; etch_codegen_*) LAYER=codegen ;; etch) LAYER=tool ;;
    *) LAYER="" ;;
  esac
}

links=0
cmake_file=$root/CMakeLists.txt
if [ -f "$cmake_file" ]; then
  lineno=0
  while IFS= read -r line; do
    lineno=$((lineno + 1))
    [[ $line =~ ^[[:space:]]*(target_link_libraries|etch_layer)[[:space:]]*\([[:space:]]*([A-Za-z0-9_]+)([^\)]*)(\)?) ]] ||
      continue
    command=${BASH_REMATCH[1]} target=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]} closed=${BASH_REMATCH[4]}
    layer_of_target "$target"; from=$LAYER
    [ -n "$from" ] || continue
    if [ -z "$closed" ]; then
      echo "CMakeLists.txt:$lineno: error: $command($target ...) must be on one line for this check"
      bad=1
      continue
    fi
    read -ra words <<<"$rest"
    for word in "${words[@]}"; do
      if [ "$command" = etch_layer ]; then
        layer_of "$word/"; to=$LAYER
        if [ "$to" != "$from" ]; then
          echo "CMakeLists.txt:$lineno: error: layer '$from' library $target compiles folder $word of layer '${to:-none}'"
          bad=1
        fi
        continue
      fi
      layer_of_target "$word"; to=$LAYER
      [ -n "$to" ] || continue
      links=$((links + 1))
      if ! allowed "$from" "$to"; then
        echo "CMakeLists.txt:$lineno: error: layer '$from' library $target links $word from layer '$to' above it or beside it"
        bad=1
      fi
    done
  done <"$cmake_file"
fi

if [ $bad = 0 ]; then
  echo "layering: $checked includes and $links library links checked, none points up"
fi
exit $bad
