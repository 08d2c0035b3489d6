#!/usr/bin/env bash
# run_catalogue.sh: the bad-input catalogue (see README.md here). Feeds etch
# every malformed source, IR file, data file and command line under cases/
# and checks, for each: exit status exactly 1; the expected diagnostic lines
# (the `error:` line exactly, and for source errors the quoted line and the
# caret line after it); no signal, no timeout, no sanitizer report; nothing
# left behind in the case's folder (no -o output, no *.tmp* file).
#
# usage: ETCH=build/etch bash tests/catalogue/run_catalogue.sh [NAME-SUBSTRING]
# Prints one line per failing case and a final "N passed, N failed" line;
# exit status 1 when a case fails.
set -uo pipefail
ETCH=${ETCH:?set ETCH to the etch binary}
ETCH=$(cd "$(dirname "$ETCH")" && pwd)/$(basename "$ETCH")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FILTER=${1:-}
TIMEOUT=${CATALOGUE_TIMEOUT:-30}
# sanitizer builds: report leaks too, and make any report fail loudly
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

work=$(mktemp -d)
trap 'chmod -R u+rwx "$work" 2>/dev/null; rm -rf "$work"' EXIT
passed=0 failed=0

fail_case() { # name reason
    echo "FAIL $1: $2"
    failed=$((failed + 1))
}

# tree_listing ARRAY: every path under the current folder, into ARRAY (builtins only)
tree_listing() {
    shopt -s globstar dotglob nullglob
    eval "$1=(**)"
    shopt -u globstar dotglob nullglob
}

# run_case NAME SETUP ARGS CASEFILE EXPECT-LINES...: one case in a fresh folder
# holding models/ and the case file; SETUP is shell run there first
# (fixtures.sh loaded); ARGS is the etch command line, word-split by the shell.
# Written with few processes per case: the catalogue has hundreds of cases.
ncase=0
run_case() {
    local name=$1 setup=$2 args=$3 casefile=$4
    shift 4
    local -a expect=("$@") before=() after=() got=()
    [ -n "$FILTER" ] && [[ $name != *"$FILTER"* ]] && return
    ncase=$((ncase + 1))
    local dir=$work/c$ncase
    cp -r "$HERE/models" "$dir" || exit 2
    [ -n "$casefile" ] && cp "$casefile" "$dir"/
    cd "$dir" || exit 2
    if [ -n "$setup" ] && ! (source "$HERE/fixtures.sh" && eval "$setup") >"$work/setup.log" 2>&1; then
        fail_case "$name" "setup failed: $(head -c 300 "$work/setup.log")"
        return
    fi
    tree_listing before
    local rc
    eval "timeout -k 5 $TIMEOUT \"\$ETCH\" $args" </dev/null >"$work/stdout" 2>"$work/stderr"
    rc=$?
    tree_listing after
    cd "$work" || exit 2
    mapfile -t got <"$work/stderr"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        fail_case "$name" "timed out after ${TIMEOUT}s: etch $args"
        return
    fi
    if [ $rc -gt 128 ]; then
        fail_case "$name" "killed by signal $((rc - 128)): etch $args"
        return
    fi
    local line
    for line in "${got[@]}"; do
        if [[ $line =~ AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime\ error ]]; then
            fail_case "$name" "sanitizer report: $line"
            return
        fi
    done
    if [ $rc -ne 1 ]; then
        fail_case "$name" "exit status $rc (want 1): etch $args; stderr: $(head -c 300 "$work/stderr")"
        return
    fi
    # the expected lines, consecutive, starting at the first line holding "error:"
    local k=0 i
    while [ $k -lt ${#got[@]} ] && [[ ${got[$k]} != *"error:"* ]]; do k=$((k + 1)); done
    for ((i = 0; i < ${#expect[@]}; i++)); do
        local want=${expect[$i]//%s/${casefile##*/}}
        if [ $((k + i)) -ge ${#got[@]} ] || [ "${got[$((k + i))]}" != "$want" ]; then
            fail_case "$name" "line $((i + 1)) of the diagnostic differs
    want: $want
    got:  ${got[$((k + i))]-<no such line>}
    (stderr: $(head -c 400 "$work/stderr"))"
            return
        fi
    done
    local -A had=()
    local left=""
    for line in "${before[@]}"; do had[$line]=1; done
    for line in "${after[@]}"; do [ -n "${had[$line]-}" ] || left+=" $line"; done
    if [ -n "$left" ]; then
        fail_case "$name" "left behind:$left"
        return
    fi
    passed=$((passed + 1))
}

# Source cases: one .etch / .etchir file each, with header comment lines
#   // RUN: ARGS       etch's arguments, %s is the file (default: check %s)
#   // SETUP: SHELL    optional, run in the case folder first
#   // EXPECT: LINE    the diagnostic, one line each (exact, %s is the file name)
run_source_case() {
    local file=$1 line args="check %s" setup=""
    local -a expect=()
    while IFS= read -r line; do
        case $line in
        "// RUN: "*) args=${line#"// RUN: "} ;;
        "// SETUP: "*) setup+=${line#"// SETUP: "}$'\n' ;;
        "// EXPECT: "*) expect+=("${line#"// EXPECT: "}") ;;
        "// EXPECT:") expect+=("") ;;
        esac
    done <"$file"
    local rel=${file#"$HERE/cases/"}
    if [ ${#expect[@]} -eq 0 ]; then
        fail_case "$rel" "no // EXPECT: line"
        return
    fi
    run_case "$rel" "$setup" "${args//%s/${file##*/}}" "$file" "${expect[@]}"
}

# Table cases (*.cases): blocks of lines
#   case: NAME   setup: SHELL (any number)   run: ARGS   expect: LINE (one or more)
run_table() {
    local table=$1 line name="" setup="" args=""
    local -a expect=()
    flush() {
        [ -z "$name" ] && return
        if [ -z "$args" ] || [ ${#expect[@]} -eq 0 ]; then
            fail_case "$name" "case lacks run: or expect:"
        else
            run_case "$name" "$setup" "$args" "" "${expect[@]}"
        fi
    }
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
        "case: "*)
            flush
            name="$(basename "$table" .cases)/${line#case: }" setup="" args="" expect=()
            ;;
        "setup: "*) setup+=${line#setup: }$'\n' ;;
        "run: "*) args=${line#run: } ;;
        "expect: "*) expect+=("${line#expect: }") ;;
        "" | "#"*) ;;
        *) fail_case "${table##*/}" "unreadable line: $line" ;;
        esac
    done <"$table"
    flush
}

while IFS= read -r f; do
    case $f in
    *.cases) run_table "$f" ;;
    *) run_source_case "$f" ;;
    esac
done < <(find "$HERE/cases" -type f \( -name '*.etch' -o -name '*.etchir' -o -name '*.cases' \) | LC_ALL=C sort)

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
