#!/usr/bin/env python3
"""Hugging Face tokenizers (and the sentencepiece module) on the text bench_tokenizer_throughput
encodes, with 1 and 2 threads, one JSON line per configuration in the same form.

The text is regenerated here from the same splitmix64 stream and word table (read from
bench/tokenizer_throughput.cpp, so the two cannot drift), or read from the file that
`bench_tokenizer_throughput --save-text FILE` wrote (--text FILE).

  tokenizer_peer.py [--mb 100] [--threads 1,2] [--tokenizer PATH]... [--text FILE]

Threads: tokenizers' batch encoding runs on a Rayon pool whose size is fixed at import, so each
thread count runs in a child process with RAYON_NUM_THREADS set; sentencepiece takes num_threads.
"""
import argparse
import bisect
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        return self.next() % n


def word_table():
    src = open(os.path.join(HERE, "tokenizer_throughput.cpp"), encoding="utf-8").read()
    body = re.search(r"kWords\[\] = \{(.*?)\n\};", src, re.S).group(1)
    return re.findall(r'"((?:[^"\\]|\\.)*)"', body)


def generate_documents(target_bytes):
    words = word_table()
    cumulative, total = [], 0
    for i in range(len(words)):
        total += 1000000 // (i + 1)
        cumulative.append(total)
    rng = SplitMix64(20240601)
    docs, size = [], 0
    while size < target_bytes:
        parts, doc_size = [], 0
        doc_bytes = 1000 + rng.below(3000)
        while doc_size < doc_bytes:
            n = 5 + rng.below(16)
            for w in range(n):
                kind = rng.below(100)
                if kind < 4:
                    word = str(rng.below(100000))
                elif kind < 6:
                    word = "(" + words[rng.below(len(words))] + ")"
                else:
                    word = words[bisect.bisect_right(cumulative, rng.below(total))]
                if w == 0 and "a" <= word[0] <= "z":
                    word = word[0].upper() + word[1:]
                piece = (" " if w > 0 else "") + word
                if w + 1 < n and rng.below(10) == 0:
                    piece += ","
                parts.append(piece)
                doc_size += len(piece.encode())
            end = rng.below(20)
            tail = ("?" if end == 0 else "!" if end == 1 else ".") + ("\n\n" if rng.below(6) == 0 else " ")
            parts.append(tail)
            doc_size += len(tail)
        doc = "".join(parts)
        docs.append(doc)
        size += doc_size
    return docs


def load_docs(args):
    if args.text:
        return open(args.text, encoding="utf-8", newline="").read().split("\f")[:-1]
    return generate_documents(int(args.mb * 1e6))


def run_one(args, path, threads, docs):
    nbytes = sum(len(d.encode()) for d in docs)
    name = os.path.basename(os.path.normpath(path))
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json") if os.path.exists(os.path.join(path, "tokenizer.json")) \
            else os.path.join(path, "tokenizer.model")
    if path.endswith(".model"):
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=path)
        sp.encode(docs[:200])
        t0 = time.perf_counter()
        ids = sp.encode(docs, num_threads=threads)
        seconds = time.perf_counter() - t0
        impl, kind = f"sentencepiece {spm.__version__}", "SentencePiece"
    else:
        import tokenizers
        tok = tokenizers.Tokenizer.from_file(path)
        tok.encode_batch(docs[:200], add_special_tokens=False)
        t0 = time.perf_counter()
        if threads == 1:
            ids = [tok.encode(d, add_special_tokens=False).ids for d in docs]
        else:
            ids = [e.ids for e in tok.encode_batch(docs, add_special_tokens=False)]
        seconds = time.perf_counter() - t0
        impl, kind = f"tokenizers {tokenizers.__version__}", "byte-level BPE"
    tokens = sum(len(x) for x in ids)
    print(json.dumps({"bench": "tokenizer_throughput", "impl": impl, "tokenizer": name, "kind": kind,
                      "threads": threads, "mb": round(nbytes / 1e6, 2), "documents": len(docs), "tokens": tokens,
                      "seconds": round(seconds, 3), "mb_per_s": round(nbytes / 1e6 / seconds, 2),
                      "tokens_per_s": round(tokens / seconds)}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mb", type=float, default=100)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--tokenizer", action="append")
    p.add_argument("--text")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    fixtures = os.environ.get("ZT_FIXTURES_DIR", os.path.join(HERE, "..", "..", "shared", "fixtures"))
    paths = args.tokenizer or [os.path.join(fixtures, "hf", "tok-bpe"), os.path.join(fixtures, "hf", "tok-sp")]
    if args.child is not None:
        docs = load_docs(args)
        for path in paths:
            run_one(args, path, args.child, docs)
        return
    for threads in [int(t) for t in args.threads.split(",")]:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="true")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(threads), "--mb", str(args.mb)]
        if args.text:
            cmd += ["--text", args.text]
        for path in paths:
            cmd += ["--tokenizer", path]
        subprocess.run(cmd, env=env, check=True)


if __name__ == "__main__":
    main()
