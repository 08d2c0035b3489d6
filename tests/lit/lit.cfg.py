# lit configuration for etch's textual tests: IR golden files (*.etchir),
# DSL programs (*.etch) and their diagnostics, checked with FileCheck.
import os
import lit.formats

config.name = "etch"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".etch", ".etchir", ".test"]
config.excludes = ["Inputs"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.etch_binary_dir, "tests", "lit-out")
config.substitutions.append(("%etch", config.etch_tool))
if config.etch_have_llvm == "ON":  # the llvm backend was built (docs/llvm.md): REQUIRES: llvm-backend
    config.available_features.add("llvm-backend")
config.substitutions.append(("%FileCheck", config.filecheck))
config.substitutions.append(("%S_src", config.etch_source_dir))
config.environment["PATH"] = os.path.dirname(config.filecheck) + os.pathsep + config.environment.get("PATH", os.environ.get("PATH", ""))
for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "HOME", "TMPDIR"):
    if var in os.environ:
        config.environment[var] = os.environ[var]
