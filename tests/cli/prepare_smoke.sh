#!/usr/bin/env bash
# End-to-end check of `gta prepare`: outputs, determinism, and clear errors on bad input.
# Env: GTA (the binary), SRC (source dir).
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

cp "$SRC/tests/data/tiny.txt" "$tmp/tiny.txt"

# 1. Plain text -> tokenizer + shards + manifest.
"$GTA" prepare --input "$tmp/tiny.txt" --out "$tmp/a" --vocab-size 512 --shard-tokens 6000 -q
for f in tokenizer.model prepare.json train_000000.h5 train_000001.h5 val_000000.h5; do
  [ -s "$tmp/a/$f" ] || fail "missing output $f"
done
grep -q '"sha256"' "$tmp/a/prepare.json" || fail "prepare.json lacks the tokenizer checksum"
grep -q '"n_tokens"' "$tmp/a/prepare.json" || fail "prepare.json lacks token counts"

# 2. Same input and seed, same bytes (the tokenizer is retrained).
"$GTA" prepare --input "$tmp/tiny.txt" --out "$tmp/b" --vocab-size 512 --shard-tokens 6000 -q
for f in tokenizer.model train_000000.h5 val_000000.h5; do
  cmp -s "$tmp/a/$f" "$tmp/b/$f" || fail "$f differs between identical runs"
done

# 3. Reusing the tokenizer gives the same shards.
"$GTA" prepare --input "$tmp/tiny.txt" --out "$tmp/c" --tokenizer "$tmp/a/tokenizer.model" \
  --shard-tokens 6000 -q
cmp -s "$tmp/a/train_000000.h5" "$tmp/c/train_000000.h5" || fail "--tokenizer changed the shards"

# 3b. --buffer-mb and --threads change memory and speed, not the output (the manifest differs in
# its command line only).
"$GTA" prepare --input "$tmp/tiny.txt" --out "$tmp/s" --vocab-size 512 --shard-tokens 6000 --buffer-mb 1 \
  --threads 1 -q
for f in tokenizer.model train_000000.h5 train_000001.h5 val_000000.h5; do
  cmp -s "$tmp/a/$f" "$tmp/s/$f" || fail "--buffer-mb 1 --threads 1 changed $f"
done
diff <(grep -v '"command"' "$tmp/a/prepare.json") <(grep -v '"command"' "$tmp/s/prepare.json") ||
  fail "--buffer-mb 1 --threads 1 changed prepare.json"
expect_fail "--buffer-mb" "$GTA" prepare --input "$tmp/tiny.txt" --out "$tmp/e0" --buffer-mb 0 -q

# 4. JSONL input, custom field.
printf '{"body": "the first document"}\n{"body": "the second one"}\n{"body": "a third"}\n' > "$tmp/d.jsonl"
"$GTA" prepare --input "$tmp/d.jsonl" --out "$tmp/j" --tokenizer "$tmp/a/tokenizer.model" \
  --jsonl-field body -q
[ -s "$tmp/j/val_000000.h5" ] || fail "JSONL run wrote no validation shard"

# 5. Errors: clear message, non-zero exit, nothing left behind.
expect_fail "not empty" "$GTA" prepare --input "$tmp/tiny.txt" --out "$tmp/a" --vocab-size 512 -q
expect_fail "missing.txt" "$GTA" prepare --input "$tmp/missing.txt" --out "$tmp/e1" -q
printf '{"text": "fine"}\n{"text": broken\n' > "$tmp/bad.jsonl"
expect_fail "bad.jsonl:2" "$GTA" prepare --input "$tmp/bad.jsonl" --out "$tmp/e2" -q
printf '{"text": "fine"}\n{"title": "no text"}\n' > "$tmp/nofield.jsonl"
expect_fail "nofield.jsonl:2" "$GTA" prepare --input "$tmp/nofield.jsonl" --out "$tmp/e3" -q
expect_fail "tokenizer" "$GTA" prepare --input "$tmp/tiny.txt" --out "$tmp/e4" \
  --tokenizer "$tmp/tiny.txt" -q
for d in e1 e2 e3 e4; do [ ! -e "$tmp/$d" ] || fail "failed run left $d behind"; done
if ls -A "$tmp" | grep -q '\.tmp-'; then fail "failed run left a temporary directory"; fi

# 6. --force replaces the output.
"$GTA" prepare --input "$tmp/tiny.txt" --out "$tmp/a" --tokenizer "$tmp/a/tokenizer.model" --force -q
echo "prepare_smoke: ok"
