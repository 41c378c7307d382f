#!/usr/bin/env bash
# The python-src corpus: every .py file of this machine's PyTorch environment (the site-packages
# directory that holds `torch`), one document per file, tokenized by `gta prepare` into
# OUT (default data/python-src): a 16384-piece BPE tokenizer (trained, or the one given with
# --tokenizer), train/val split by file (2% of the files held out), HDF5 shards.
#
#   scripts/corpus/python_src.sh [--out DIR] [--gta build/gta] [--tokenizer FILE]
#
# Files are listed in a fixed order (LC_ALL=C sort of the relative paths, hidden paths left out)
# and OUT/manifest.json records the environment (Python and torch versions), the file count,
# the bytes, the sha256 of the sorted list and the sha256 over the files' own sha256 lines
# (content). Idempotent: when OUT already holds a corpus with the same manifest, nothing is
# done; when the environment's files differ from OUT's manifest, it stops with the difference
# (move OUT away to prepare the new one).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=data/python-src gta=build/gta tokenizer=""
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --gta) gta=$2; shift 2 ;;
    --tokenizer) tokenizer=$2; shift 2 ;;
    *) echo "python_src.sh: unknown argument '$1' (--out DIR, --gta PATH, --tokenizer FILE)" >&2; exit 2 ;;
  esac
done
[ -x "$gta" ] || { echo "python_src.sh: --gta $gta is not an executable (build gta first)" >&2; exit 2; }
site=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))') ||
  { echo "python_src.sh: python3 cannot import torch: this recipe reads a PyTorch environment" >&2; exit 2; }
versions=$(python3 -c 'import sys, torch; print(sys.version.split()[0], torch.__version__)')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$site" && find . -name '*.py' -type f -not -path '*/.*' | LC_ALL=C sort) > "$work/list"
count=$(wc -l < "$work/list")
bytes=$( (cd "$site" && tr '\n' '\0' < "$work/list" | xargs -0 stat -c %s) | awk '{s += $1} END {print s}')
list_sha=$(sha256sum < "$work/list" | cut -d' ' -f1)
content_sha=$( (cd "$site" && tr '\n' '\0' < "$work/list" | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
python3 - "$work/manifest.json" "$site" "$versions" "$count" "$bytes" "$list_sha" "$content_sha" <<'PY'
import json, sys
path, site, versions, count, size, list_sha, content_sha = sys.argv[1:]
py, torch = versions.split()
json.dump({"corpus": "python-src", "site_packages": site, "python": py, "torch": torch,
           "files": int(count), "bytes": int(size), "list_sha256": list_sha, "content_sha256": content_sha,
           "recipe": "scripts/corpus/python_src.sh"}, open(path, "w"), indent=2)
PY

same() {  # the two manifests agree on what was read
  python3 - "$1" "$2" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
keys = ("files", "bytes", "list_sha256", "content_sha256")
diff = [f"{k}: {a.get(k)} (prepared) vs {b.get(k)} (now)" for k in keys if a.get(k) != b.get(k)]
print("\n".join(diff))
sys.exit(1 if diff else 0)
PY
}
if [ -f "$out/manifest.json" ] && [ -f "$out/prepare.json" ]; then
  if diff_text=$(same "$out/manifest.json" "$work/manifest.json"); then
    echo "python-src: $out is up to date ($count files, $bytes bytes)"
    exit 0
  fi
  echo "python_src.sh: $out was prepared from other files:" >&2
  echo "$diff_text" >&2
  echo "move $out away to prepare the corpus of this environment" >&2
  exit 1
fi

echo "python-src: $count files, $bytes bytes from $site"
mkdir -p "$work/src"
(cd "$site" && tar -cf - --verbatim-files-from -T "$work/list") | tar -C "$work/src" -xf -
args=(--input "$work/src" --out "$out" --doc-split file --val-fraction 0.02 --seed 1337 --force)
if [ -n "$tokenizer" ]; then args+=(--tokenizer "$tokenizer"); else args+=(--vocab-size 16384); fi
"$gta" prepare "${args[@]}"
cp "$work/manifest.json" "$out/manifest.json"
python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
m, p = json.load(open(f"{d}/manifest.json")), json.load(open(f"{d}/prepare.json"))
m["tokenizer_sha256"] = p["tokenizer"]["sha256"]
m["vocab_size"] = p["tokenizer"]["vocab_size"]
m["train"] = {k: p["train"][k] for k in ("n_documents", "n_tokens", "n_bytes") if k in p.get("train", {})}
m["val"] = {k: p["val"][k] for k in ("n_documents", "n_tokens", "n_bytes") if k in p.get("val", {})}
json.dump(m, open(f"{d}/manifest.json", "w"), indent=2)
print(json.dumps(m, indent=2))
PY
