#!/usr/bin/env python3
"""Writes a synthetic JSONL corpus of about SIZE_GB gigabytes for bench/results/prepare.md: each
record's "text" is 1 to 8 paragraphs of tests/data/tiny.txt, picked by a seeded generator, and
its number, so every document differs while the text stays English-like.

    bench/prepare_corpus.py OUT.jsonl SIZE_GB
"""
import json
import pathlib
import random
import sys

out, size_gb = sys.argv[1], float(sys.argv[2])
tiny = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "tiny.txt"
paragraphs = [p.strip() for p in tiny.read_text().split("\n\n") if p.strip()]
rng = random.Random(1337)
target, written, n = int(size_gb * 1e9), 0, 0
with open(out, "w") as f:
    while written < target:
        batch = []
        for _ in range(1000):
            text = f"Record {n}.\n" + "\n\n".join(rng.choices(paragraphs, k=rng.randint(1, 8)))
            batch.append(json.dumps({"text": text, "id": n}))
            n += 1
        chunk = "\n".join(batch) + "\n"
        f.write(chunk)
        written += len(chunk)
print(f"{out}: {n} records, {written / 1e9:.2f} GB")
