#!/usr/bin/env bash
# The english-docs corpus: English prose from two Debian documentation packages, the Linux
# kernel's documentation (linux-doc-6.1) and Python's (python3.11-doc), both Sphinx HTML. Each
# HTML page becomes one plain-text document through Debian's python3-html2text (links, images
# and emphasis markup dropped, no line wrapping); gta prepare then trains a 16384-piece BPE
# tokenizer and writes train/val shards (5% of the pages held out) into OUT
# (default data/english-docs), small enough to travel with a GPU job.
#
#   scripts/corpus/english_docs.sh [--out DIR] [--gta build/gta]
#
# The packages are downloaded (apt-get download; not installed) into OUT's cache and unpacked
# with dpkg-deb. OUT/manifest.json records each package's version and sha256, the page count,
# the bytes of text and the sha256 over the pages' own sha256 lines. Idempotent: when OUT
# already holds a corpus with the same manifest, nothing is done.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=data/english-docs gta=build/gta
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --gta) gta=$2; shift 2 ;;
    *) echo "english_docs.sh: unknown argument '$1' (--out DIR, --gta PATH)" >&2; exit 2 ;;
  esac
done
[ -x "$gta" ] || { echo "english_docs.sh: --gta $gta is not an executable (build gta first)" >&2; exit 2; }
/usr/bin/python3 -c "import html2text" 2>/dev/null ||
  { echo "english_docs.sh: needs Debian's python3-html2text (scripts/setup.sh installs it)" >&2; exit 2; }
packages=(linux-doc-6.1 python3.11-doc)

cache=$out.cache
mkdir -p "$cache"
(cd "$cache" && for p in "${packages[@]}"; do ls "${p}"_*.deb > /dev/null 2>&1 || apt-get download "$p"; done)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for deb in "$cache"/*.deb; do dpkg-deb -x "$deb" "$work/root"; done

# Pages in a fixed order; Sphinx's generated index, search and source-copy pages left out.
(cd "$work/root/usr/share/doc" && find . -name '*.html' -type f \
   -not -path '*/_sources/*' -not -path '*/_static/*' -not -name 'genindex*' -not -name 'search.html' \
   -not -name 'py-modindex.html' -not -name 'objects.inv' | LC_ALL=C sort) > "$work/pages"
/usr/bin/python3 - "$work/root/usr/share/doc" "$work/pages" "$work/text" <<'PY'
import os, sys
import html2text
root, pages, dst = sys.argv[1:]
conv = html2text.HTML2Text()
conv.ignore_links = conv.ignore_images = conv.ignore_emphasis = True
conv.body_width = 0  # keep paragraphs on one line: no wrapping at a fixed width
for rel in open(pages).read().splitlines():
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        text = conv.handle(f.read()).strip()
    path = os.path.join(dst, rel[:-5] + ".txt")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
PY
(cd "$work/text" && find . -name '*.txt' -type f | LC_ALL=C sort) > "$work/list"
count=$(wc -l < "$work/list")
bytes=$( (cd "$work/text" && tr '\n' '\0' < "$work/list" | xargs -0 stat -c %s) | awk '{s += $1} END {print s}')
content_sha=$( (cd "$work/text" && tr '\n' '\0' < "$work/list" | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
debs=$(cd "$cache" && for d in *.deb; do echo "$d $(sha256sum < "$d" | cut -d' ' -f1)"; done)
/usr/bin/python3 - "$work/manifest.json" "$count" "$bytes" "$content_sha" "$debs" <<'PY'
import json, sys
path, count, size, content_sha, debs = sys.argv[1:]
pk = [dict(zip(("deb", "sha256"), line.split())) for line in debs.splitlines()]
json.dump({"corpus": "english-docs", "packages": pk, "pages": int(count), "bytes": int(size),
           "content_sha256": content_sha, "converter": "python3-html2text (links, images, emphasis dropped)",
           "recipe": "scripts/corpus/english_docs.sh"}, open(path, "w"), indent=2)
PY
if [ -f "$out/manifest.json" ] && [ -f "$out/prepare.json" ]; then
  if /usr/bin/python3 - "$out/manifest.json" "$work/manifest.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
sys.exit(0 if all(a.get(k) == b.get(k) for k in ("packages", "pages", "bytes", "content_sha256")) else 1)
PY
  then echo "english-docs: $out is up to date ($count pages, $bytes bytes)"; exit 0; fi
  echo "english_docs.sh: $out was prepared from other pages or packages; move it away to prepare again" >&2
  exit 1
fi
echo "english-docs: $count pages, $bytes bytes of text"
"$gta" prepare --input "$work/text" --out "$out" --doc-split file --val-fraction 0.05 --seed 1337 \
  --vocab-size 16384 --force
cp "$work/manifest.json" "$out/manifest.json"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
m, p = json.load(open(f"{d}/manifest.json")), json.load(open(f"{d}/prepare.json"))
m["tokenizer_sha256"], m["vocab_size"] = p["tokenizer"]["sha256"], p["tokenizer"]["vocab_size"]
for split in ("train", "val"):
    m[split] = {k: p[split][k] for k in ("n_documents", "n_tokens", "n_bytes")}
json.dump(m, open(f"{d}/manifest.json", "w"), indent=2)
print(json.dumps(m, indent=2))
PY
