#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, the fuzz preset: clang + ASan/UBSan, into
# ./build-fuzz) and runs each on a seed corpus of valid inputs for a fixed budget:
#   scripts/fuzz.sh --seconds S     each target for S seconds (CI: a short run)
#   scripts/fuzz.sh --runs N        each target for N executions (bench/results/fuzz.md)
# Prints one line per target: executions, seconds, and the corpus it grew. A crash, a sanitizer
# report or an exception other than gta::Error stops the run with libFuzzer's report, the input
# saved as build-fuzz/crash-<target>-*, and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  --seconds) budget=(-max_total_time="$2") ;;
  --runs) budget=(-runs="$2") ;;
  *) echo "usage: scripts/fuzz.sh --seconds S | --runs N" >&2; exit 2 ;;
esac
targets=(fuzz_config_yaml fuzz_safetensors fuzz_hdf5_shard fuzz_bin_shard fuzz_trainer_json)
cmake --preset fuzz > /dev/null
cmake --build --preset fuzz --parallel "$(nproc)" --target "${targets[@]}"

# Seeds: small valid inputs of each format (the fuzzer mutates from there).
seeds=build-fuzz/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{fuzz_config_yaml,fuzz_safetensors,fuzz_hdf5_shard,fuzz_bin_shard,fuzz_trainer_json}
cp configs/quickstart.yaml configs/models/s/*.yaml "$seeds/fuzz_config_yaml/"
PY=/usr/bin/python3
"$PY" - "$seeds" <<'PY'
import json, struct, sys
import h5py, numpy as np
d = sys.argv[1]
# safetensors: two small tensors and metadata.
tensors = {"a": ("F32", [2, 3], np.arange(6, dtype=np.float32)), "b": ("I64", [2], np.array([1, 2], np.int64))}
header, blob = {"__metadata__": {"format": "gta", "step": "3"}}, b""
for name, (dt, shape, arr) in tensors.items():
    header[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(blob), len(blob) + arr.nbytes]}
    blob += arr.tobytes()
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
open(f"{d}/fuzz_safetensors/seed.safetensors", "wb").write(struct.pack("<Q", len(h)) + h + blob)
# An HDF5 shard as `gta prepare` writes it (tokens, doc_offsets, attributes).
with h5py.File(f"{d}/fuzz_hdf5_shard/seed.h5", "w") as f:
    f.create_dataset("tokens", data=np.arange(100, dtype=np.uint16) % 50, chunks=(64,), compression="gzip")
    f.create_dataset("doc_offsets", data=np.array([0, 40], np.uint64))
    f.attrs["format"] = np.bytes_("gta-tokens-1")
    f.attrs["tokenizer_sha256"] = np.bytes_("0" * 64)
    for k, v in {"n_tokens": 100, "n_bytes": 300, "n_documents": 2, "vocab_size": 50}.items():
        f.attrs[k] = np.uint64(v)
# A .bin shard (llm.c: 256 int32 header, uint16 tokens).
hdr = np.zeros(256, np.int32)
hdr[:3] = [20240520, 1, 100]
open(f"{d}/fuzz_bin_shard/seed.bin", "wb").write(hdr.tobytes() + (np.arange(100, dtype=np.uint16) % 50).tobytes())
# trainer.json of step 1.
tj = {"format": "gta-checkpoint", "version": 1, "step": 1, "optimizer_step": 1, "rng": [1, 2, 3, 4, 0],
      "loader": {"cursor": 2, "seed": 7, "mode": "random", "seq_len": 16, "fingerprint": "x"},
      "config": {}, "model_config": {}, "extra": {"tokens_seen": 32.0},
      "sha256": {"model.safetensors": "0" * 64, "optimizer.safetensors": "0" * 64}}
open(f"{d}/fuzz_trainer_json/trainer.json", "w").write(json.dumps(tj, indent=2))
PY

for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  mkdir -p "$corpus"
  start=$SECONDS
  log=build-fuzz/$t.log
  if ! (cd build-fuzz && "./$t" "${budget[@]}" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="crash-$t-" -print_final_stats=1 "corpus/$t" "seeds/$t") > "$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $t FAILED (input saved as build-fuzz/crash-$t-*)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz: $t: $runs executions in $((SECONDS - start)) s, 0 crashes, corpus $(ls "$corpus" | wc -l) inputs"
done
