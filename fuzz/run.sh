#!/usr/bin/env bash
# Runs one cargo-fuzz target on its committed seeds, its saved crash inputs
# and its dictionary; extra arguments go to libFuzzer.
#   fuzz/run.sh query -max_total_time=600 -jobs=1
#   FUZZ_CORPUS_ROOT=/tmp/c fuzz/run.sh config_yaml -max_total_time=30
# New inputs libFuzzer finds go to $FUZZ_CORPUS_ROOT/TARGET (default
# fuzz/corpus/, git-ignored); crashes to fuzz/artifacts/TARGET/.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets stable 1.95 pass them.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
target=${1:?usage: fuzz/run.sh TARGET [libFuzzer flags...]}
shift
corpus=${FUZZ_CORPUS_ROOT:-corpus}/$target
mkdir -p "$corpus"
dirs=("$corpus" "seeds/$target")
[ -d "regressions/$target" ] && dirs+=("regressions/$target")
flags=(-timeout=10 -print_final_stats=1)
[ -e "dict/$target.dict" ] && flags+=("-dict=dict/$target.dict")
# -O: optimized; -a: debug assertions and overflow checks stay on.
exec cargo fuzz run -O -a "$target" "${dirs[@]}" -- "${flags[@]}" "$@"
