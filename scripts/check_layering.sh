#!/usr/bin/env bash
# check_layering.sh: every #include "..." in the compiler's sources must point
# at its own layer or one below it. The layers, lowest first:
#
#   runtime   the runtime emitted programs link (libc only): includes nothing of etch
#   ir        the graph, the op table and its meaning          -> runtime
#   passes    graph -> graph transforms and the -O pipeline    -> ir, runtime
#   frontend  DSL -> IR                                        -> passes, ir, runtime
#   codegen   IR -> target source; backends fill one interface -> passes, ir, runtime
#   tool      the `etch` command line                          -> everything
#
# frontend and codegen are siblings: neither includes the other. The CMake
# libraries (one per layer) state the same direction in their link lines; this
# check catches an include that the link line would only catch later, or not
# at all (header-only use). Quoted includes are resolved as the compiler does:
# relative to the including file first, then to the repository root.
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

if [ $bad = 0 ]; then
  echo "layering: $checked includes checked, none points up"
fi
exit $bad
