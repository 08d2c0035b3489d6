#!/usr/bin/env bash
# test_install.sh: etch as a user's build sees it. `cmake --install` of the
# current build into a temporary prefix, which is then moved (nothing may
# point back into the build tree or the old prefix); the installed tool runs
# from another folder; samples/embed configures against the prefix
# (find_package + etch_add_model), builds and classifies an image exactly as
# the installed `etch run` does (and, built, its llvm backend); a C++ program links three models of one source
# (prefixes per model, all model.h in one file, WEIGHTS and OPT; QUANTIZE int8
# CALIB and THREADS, the int8 class as `etch run --quantize` gives it, and a
# changed calibration file rebuilds the model; TARGET_BACKEND cuda stops the
# configure step), and the same project configures with etch as a subproject; a model
# that does not compile stops the build with etch's located error; a model.h
# refuses another version's runtime header; the man page and the bash
# completion exist and name every command and option of `etch --help`; the
# pkg-config file gives the runtime's header folder.
source "$(dirname "$0")/e2e_common.sh"
ETCH=${ETCH:?} SRC=${ETCH_SOURCE_DIR:?} BIN=${ETCH_BINARY_DIR:?}
# a sanitizer build's runtime library needs the sanitizers at every link: not one to install
if [ "${ETCH_SANITIZE:-OFF}" = ON ]; then echo "skipped: sanitizer build"; exit 77; fi
images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
mlp=$SRC/samples/mlp.etch

cmake --install "$BIN" --prefix "$t/first" >/dev/null
mv "$t/first" "$t/prefix"
P=$t/prefix
etch=$P/bin/etch
mkdir "$t/work"
cd "$t/work" # away from the source and build trees

# the installed tool: its own version, a model in and out of the C compiler
"$etch" --version | grep -q "^etch [0-9]" || fail "installed etch --version"
if [ -f "$images" ]; then
  "$etch" make-input "$mlp" -D B=1 --idx "$images" --index 0 -o img.npy
else
  "$etch" make-input "$mlp" -D B=1 --seed 3 -o img.npy
fi
"$etch" run "$mlp" -D B=1 --input img.npy -o logits.npy
want=$("$etch" show logits.npy --argmax | tr -d '[:space:]')
[[ $want =~ ^[0-9]$ ]] || fail "etch show --argmax printed '$want'"
# the llvm backend, when built, is a module under the moved prefix (lib/etch)
if [ -f "$BIN/libetch_llvm.so" ]; then
  "$etch" run "$mlp" -D B=1 --backend llvm --input img.npy -o logits_llvm.npy || fail "installed etch run --backend llvm"
  "$etch" compare logits_llvm.npy logits.npy >/dev/null || fail "installed --backend llvm differs from the C path"
fi

# samples/embed against the prefix: prints the class etch run computes
cmake -S "$SRC/samples/embed" -B embed -DCMAKE_PREFIX_PATH="$P" >embed.log 2>&1 || { cat embed.log; fail "configure samples/embed"; }
cmake --build embed >>embed.log 2>&1 || { cat embed.log; fail "build samples/embed"; }
got=$(embed/classify img.npy)
[[ $got =~ ^([0-9])\  ]] || fail "classify printed '$got'"
[ "${BASH_REMATCH[1]}" = "$want" ] || fail "classify says '$got', etch run says class $want"
embed/classify logits.npy 2>err.txt && fail "classify accepted logits as an image"
grep -q "the model takes f32\[1,1,28,28\]" err.txt || fail "classify's shape message: $(cat err.txt)"

# a model that does not compile: the build stops, etch's located error in the log
printf 'const B = 1\nmodel Net {\n  fn forward(x: f32[B, 1, 28, 28]) -> f32[B, 10] {\n    return nope\n  }\n}\n' >bad.etch
cmake -S "$SRC/samples/embed" -B bad -DCMAKE_PREFIX_PATH="$P" -DMLP_SOURCE="$PWD/bad.etch" >bad.log 2>&1 || fail "configure with bad.etch"
cmake --build bad >>bad.log 2>&1 && fail "a model that does not compile built"
grep -q "bad.etch:4:12: error: unknown name 'nope'" bad.log || { cat bad.log; fail "no located error in the build log"; }
[ ! -e bad/classify ] || fail "the program was linked anyway"

# three models of one source in one C++ program, weights from a file and
# embedded, one of them int8 with activation ranges written here (as etch
# calibrate writes them) and its kernels split over 2 threads
"$etch" build "$mlp" -D B=1 --c-only -o w
printf '%s' '{"format": "etch-calibration-1", "model": "Net", "tensors": [{"name": "fc1.weight:input", "shape": [1, 784], "lo": 0, "hi": 1}, {"name": "fc2.weight:input", "shape": [1, 128], "lo": 0, "hi": 4}]}' >calib.json
"$etch" run "$mlp" -D B=1 --weights w/Net.safetensors --quantize int8 --calib calib.json --input img.npy -o q.npy
qwant=$("$etch" show q.npy --argmax | tr -d '[:space:]')
consumer=(-DMLP_SOURCE="$mlp" -DMLP_WEIGHTS="$PWD/w/Net.safetensors" -DMLP_CALIB="$PWD/calib.json")
cmake -S "$SRC/tests/e2e/install_consumer" -B two -DCMAKE_PREFIX_PATH="$P" "${consumer[@]}" >two.log 2>&1 ||
  { cat two.log; fail "configure install_consumer"; }
cmake --build two >>two.log 2>&1 || { cat two.log; fail "build install_consumer (three models, C++)"; }
got=$(two/consumer img.npy w/Net.safetensors)
[ "$got" = "ok $want x v q$qwant" ] || fail "the three-model program printed '$got' (int8: etch run says $qwant)"
grep -q "= qmatmul" two/etch_models/mlp_q/model.c || fail "QUANTIZE int8: mlp_q has no int8 matmul"
grep -qe "--threads 2" two/CMakeFiles/mlp_q.dir/build.make || fail "THREADS 2 did not reach etch build"
touch calib.json # a new calibration file: the model is compiled again
cmake --build two --target mlp_q -- -n >dry.log 2>&1 # make -n: what it would run
grep -q "etch build .*--calib" dry.log || { cat dry.log; fail "a changed CALIB file does not rebuild mlp_q"; }
cmake -S "$SRC/tests/e2e/install_consumer" -B cuda -DCMAKE_PREFIX_PATH="$P" "${consumer[@]}" -DMLP_Q_BACKEND=cuda \
  >cuda.log 2>&1 && fail "TARGET_BACKEND cuda configured"
tr -s ' \n' '  ' <cuda.log | grep -q "TARGET_BACKEND cuda: the CUDA backend is not built yet (etch issue 12)" || { cat cuda.log; fail "TARGET_BACKEND cuda: no clear error"; }
nm two/libmlp_b1.a | grep -qE " [Ti] mlp_b1_forward$" || fail "mlp_b1_forward is not defined in libmlp_b1.a"
clashes=$(nm --defined-only two/libmlp_b1.a two/libmlp_b2.a | awk '$2 ~ /^[A-Z]$/ {print $3}' | sort | uniq -d)
[ -z "$clashes" ] || fail "the two model libraries both define: $clashes"

# the same program with etch as a subproject (add_subdirectory of the source
# tree): configured here, the build rule in place and driven by the in-tree
# tool; building it compiles all of etch, so only with ETCH_TEST_SUBPROJECT=1
cmake -S "$SRC/tests/e2e/install_consumer" -B sub -DETCH_ROOT="$SRC" "${consumer[@]}" >sub.log 2>&1 ||
  { cat sub.log; fail "configure with add_subdirectory(etch)"; }
grep -rqs "etch: compiling model mlp_b1" sub/CMakeFiles || fail "add_subdirectory: no rule compiling mlp_b1"
grep -qsE "^\s(\S*/)?etch/etch build " sub/CMakeFiles/mlp_b1.dir/build.make || fail "add_subdirectory: the rule does not run the in-tree etch"
if [ "${ETCH_TEST_SUBPROJECT:-0}" = 1 ]; then
  cmake --build sub -j "$(nproc)" >>sub.log 2>&1 || { cat sub.log; fail "build with add_subdirectory(etch)"; }
  [ "$(sub/consumer img.npy w/Net.safetensors)" = "ok $want x v q$qwant" ] || fail "add_subdirectory: wrong output"
fi

# another etch version's runtime header: model.h stops with a clear #error
sed 's/^#define ETCH_RT_VERSION_MINOR [0-9]*/#define ETCH_RT_VERSION_MINOR 99/' w/etch_rt.h >w/etch_rt.h.new
mv w/etch_rt.h.new w/etch_rt.h
${CC:-cc} -fsyntax-only -I w w/model.c 2>cc.err && fail "model.c compiled against another version's etch_rt.h"
grep -q "model.h was generated by etch .*another etch version's runtime" cc.err || fail "version error: $(cat cc.err)"

# pkg-config: the runtime's header folder, relocated with the prefix
read -r cflags < <(PKG_CONFIG_PATH=$P/lib/pkgconfig pkg-config --cflags etch-runtime)
[ -f "${cflags#-I}/etch_rt.h" ] || fail "pkg-config --cflags etch-runtime gives '$cflags'"

# the man page and the completion: every command and every option of the help
man_page=$P/share/man/man1/etch.1 completion=$P/share/bash-completion/completions/etch
[ -f "$man_page" ] && [ -f "$completion" ] || fail "man page or completion not installed"
if command -v man >/dev/null; then
  MANWIDTH=200 man -l "$man_page" 2>/dev/null >man.txt || fail "man -l etch.1"
else
  grep -q '^\.TH ETCH 1' "$man_page" || fail "etch.1 has no .TH"
  sed 's/\\-/-/g' "$man_page" >man.txt
fi
"$etch" --help >help.txt
commands=$(sed -n '/^commands:/,/^$/p' help.txt | grep -oE '^  [a-z][a-z-]+' | sort -u)
options=$(sed -n '/^options/,/^$/p' help.txt | grep -oE '^  -[-A-Za-z]+' | sed 's/^  //; s/^-O$/-O0/' | sort -u)
[ "$(echo "$commands" | wc -w)" -ge 14 ] && [ "$(echo "$options" | wc -w)" -ge 30 ] || fail "could not read the help"
for c in $commands; do
  grep -qE "^ +$c( |$)" man.txt || fail "the man page lacks command $c"
  grep -qE "(\"| )$c\) opts=" "$completion" || fail "the completion lacks command $c"
  grep -qE "compgen -W \"[^\"]*\\b$c\\b" "$completion" || fail "the completion does not offer command $c"
done
for o in $options; do
  grep -qe "$o" man.txt || fail "the man page lacks option $o"
  grep -qe " $o[ \"]" "$completion" || fail "the completion lacks option $o"
done
bash -n "$completion" || fail "the completion is not valid bash"
echo "install: ok (class $want)"
