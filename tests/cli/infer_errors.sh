#!/usr/bin/env bash
# `gta eval` and `gta generate` reject bad input with a clear message and a non-zero exit:
# a missing checkpoint, a truncated .safetensors, a directory that is no checkpoint, an unknown
# flag, a checkpoint with no recorded tokenizer, missing required options.
# Needs GTA (the binary) and SRC (the source tree, for a golden .safetensors to truncate).
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
set +e  # run every check, count the failures ($fails), report them at the end

golden="$SRC/tests/golden/gta.safetensors"
[[ -f $golden ]] || fail "missing $golden"
head -c 200 "$golden" >"$tmp/cut.safetensors"
head -c 5 "$golden" >"$tmp/tiny.safetensors"
head -c $(($(stat -c %s "$golden") - 100)) "$golden" >"$tmp/short_data.safetensors"  # header intact
mkdir -p "$tmp/empty_dir" "$tmp/run/checkpoints" "$tmp/ckpt"
cp "$golden" "$tmp/ckpt/model.safetensors"
printf 'some text\n' >"$tmp/data.txt"

for cmd in eval generate; do
  if [[ $cmd == eval ]]; then extra=(--data "$tmp/data.txt"); else extra=(--prompt hello); fi
  expect_fail "no such file or directory" "$GTA" $cmd "$tmp/missing" "${extra[@]}"
  expect_fail "truncated" "$GTA" $cmd "$tmp/cut.safetensors" "${extra[@]}"
  expect_fail "file too short" "$GTA" $cmd "$tmp/tiny.safetensors" "${extra[@]}"
  expect_fail "run past the data buffer" "$GTA" $cmd "$tmp/short_data.safetensors" "${extra[@]}"
  expect_fail "not a checkpoint" "$GTA" $cmd "$tmp/empty_dir" "${extra[@]}"
  expect_fail "has no complete checkpoint" "$GTA" $cmd "$tmp/run" "${extra[@]}"
  expect_fail "--no-such-flag" "$GTA" $cmd "$tmp/ckpt" "${extra[@]}" --no-such-flag
done
# Required options and values out of range.
expect_fail "--data" "$GTA" eval "$tmp/ckpt"
expect_fail "--prompt" "$GTA" generate "$tmp/ckpt"
expect_fail "--batch-size must be >= 1" "$GTA" eval "$tmp/ckpt" --data "$tmp/data.txt" --batch-size 0
expect_fail "top-p must be in (0, 1]" "$GTA" generate "$tmp/ckpt" --prompt hi --top-p 2
expect_fail "top-p must be in (0, 1]" "$GTA" generate "$tmp/ckpt" --prompt hi --top-p 0
expect_fail "temperature must be >= 0" "$GTA" generate "$tmp/ckpt" --prompt hi --temperature -1
expect_fail "--num-samples must be >= 1" "$GTA" generate "$tmp/ckpt" --prompt hi --num-samples 0
expect_fail "--seq-len must be >= 1" "$GTA" eval "$tmp/ckpt" --data "$tmp/data.txt" --seq-len 0
# A checkpoint without a tokenizer beside it: generate asks for --tokenizer.
expect_fail "--tokenizer" "$GTA" generate "$tmp/ckpt" --prompt hi
# A tokenizer path that is not a SentencePiece model.
expect_fail "data.txt" "$GTA" generate "$tmp/ckpt" --prompt hi --tokenizer "$tmp/data.txt"
# Missing shards fail before the model loads; a file with tensors the model lacks is named.
expect_fail "missing.h5" "$GTA" eval "$tmp/ckpt" --data "$tmp/missing.h5"
expect_fail "unexpected tensor" "$GTA" eval "$tmp/ckpt" --data "$tmp/data.txt"

if [[ $fails -ne 0 ]]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all infer error checks passed"
