#!/usr/bin/env bash
# End-to-end check of `gta prepare`: outputs, determinism, and clear errors on bad input.
# Env: GTA (the binary), SRC (source dir).
set -euo pipefail
: "${GTA:?GTA must point to the gta binary}"
: "${SRC:?SRC must point to the source directory}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_error <substring> <command...>: the command must exit non-zero and print the substring.
expect_error() {
  local want=$1; shift
  if "$@" >"$work/out.txt" 2>&1; then cat "$work/out.txt"; fail "expected failure: $*"; fi
  grep -qF -- "$want" "$work/out.txt" || { cat "$work/out.txt"; fail "message lacks '$want': $*"; }
}

cp "$SRC/tests/data/tiny.txt" "$work/tiny.txt"

# 1. Plain text -> tokenizer + shards + manifest.
"$GTA" prepare --input "$work/tiny.txt" --out "$work/a" --vocab-size 512 --shard-tokens 6000 -q
for f in tokenizer.model prepare.json train_000000.h5 train_000001.h5 val_000000.h5; do
  [ -s "$work/a/$f" ] || fail "missing output $f"
done
grep -q '"sha256"' "$work/a/prepare.json" || fail "prepare.json lacks the tokenizer checksum"
grep -q '"n_tokens"' "$work/a/prepare.json" || fail "prepare.json lacks token counts"

# 2. Same input and seed, same bytes (the tokenizer is retrained).
"$GTA" prepare --input "$work/tiny.txt" --out "$work/b" --vocab-size 512 --shard-tokens 6000 -q
for f in tokenizer.model train_000000.h5 val_000000.h5; do
  cmp -s "$work/a/$f" "$work/b/$f" || fail "$f differs between identical runs"
done

# 3. Reusing the tokenizer gives the same shards.
"$GTA" prepare --input "$work/tiny.txt" --out "$work/c" --tokenizer "$work/a/tokenizer.model" \
  --shard-tokens 6000 -q
cmp -s "$work/a/train_000000.h5" "$work/c/train_000000.h5" || fail "--tokenizer changed the shards"

# 4. JSONL input, custom field.
printf '{"body": "the first document"}\n{"body": "the second one"}\n{"body": "a third"}\n' > "$work/d.jsonl"
"$GTA" prepare --input "$work/d.jsonl" --out "$work/j" --tokenizer "$work/a/tokenizer.model" \
  --jsonl-field body -q
[ -s "$work/j/val_000000.h5" ] || fail "JSONL run wrote no validation shard"

# 5. Errors: clear message, non-zero exit, nothing left behind.
expect_error "not empty" "$GTA" prepare --input "$work/tiny.txt" --out "$work/a" --vocab-size 512 -q
expect_error "missing.txt" "$GTA" prepare --input "$work/missing.txt" --out "$work/e1" -q
printf '{"text": "fine"}\n{"text": broken\n' > "$work/bad.jsonl"
expect_error "bad.jsonl:2" "$GTA" prepare --input "$work/bad.jsonl" --out "$work/e2" -q
printf '{"text": "fine"}\n{"title": "no text"}\n' > "$work/nofield.jsonl"
expect_error "nofield.jsonl:2" "$GTA" prepare --input "$work/nofield.jsonl" --out "$work/e3" -q
expect_error "tokenizer" "$GTA" prepare --input "$work/tiny.txt" --out "$work/e4" \
  --tokenizer "$work/tiny.txt" -q
for d in e1 e2 e3 e4; do [ ! -e "$work/$d" ] || fail "failed run left $d behind"; done
if ls -A "$work" | grep -q '\.tmp-'; then fail "failed run left a temporary directory"; fi

# 6. --force replaces the output.
"$GTA" prepare --input "$work/tiny.txt" --out "$work/a" --tokenizer "$work/a/tokenizer.model" --force -q
echo "prepare_smoke: ok"
