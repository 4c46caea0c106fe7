#!/usr/bin/python3
"""Writes reference encodings of the shipped tokenizer, made by the SentencePiece library itself.

The C++ tokenizer reimplements SentencePiece's BPE encoding (Debian's libsentencepiece cannot
share a process with gRPC's protobuf); models/tokenizer_test.cc checks it against these ids.

Usage: /usr/bin/python3 tests/reference/make_tokenizer_cases.py MODEL OUT.json
"""
import json
import sys

import sentencepiece as spm

TEXTS = [
    "The jury said it did find that many of Atlanta's registration and election laws",
    "Hello, world! The quick brown fox jumps over the lazy dog.",
    "  two leading spaces, three trailing   ",
    "Line one\nLine two\n\nParagraph\ttab",
    "Numbers 1961 and 3.14159 and 2,500,000 dollars",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00fcber",
    "emoji \U0001F600 \U0001F44D\U0001F3FD and CJK \u4e2d\u6587",
    "UPPER lower MiXeD cAsE words",
    "\"Quoted,\" he said; 'single' -- dashes... (parens) [brackets] {braces}",
    "a",
    " ",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]


def main():
    model, out = sys.argv[1], sys.argv[2]
    sp = spm.SentencePieceProcessor(model_file=model)
    cases = [{"text": t, "ids": sp.encode(t)} for t in TEXTS]
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=True, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
