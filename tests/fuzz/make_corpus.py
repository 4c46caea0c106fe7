#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/seed-*) from the specs
below: protobuf messages are encoded by protoc from text format, so the seeds follow the .proto
files. Each seed starts with the target's mode byte (see the target's source). Files named
crash-* (inputs that once failed, kept as regression tests) are never touched. state_seed.pt, the
checkpoint target's model.pt seed, is a three-tensor dict written by PyTorch's torch.save
(Debian's python3-torch), so the loader is fuzzed from the format it reads.

Usage: tests/fuzz/make_corpus.py [--protoc PROTOC]
"""
import argparse
import json
import pathlib
import struct
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fuzz" / "corpus"
PROTO_DIR = ROOT / "proto"


def encode(protoc, message, text):
    """Text-format `text` of moe.v1.`message` -> wire bytes."""
    files = [str(p.relative_to(PROTO_DIR)) for p in sorted((PROTO_DIR / "moe" / "v1").glob("*.proto"))]
    return subprocess.run([protoc, f"--proto_path={PROTO_DIR}", f"--encode=moe.v1.{message}", *files],
                          input=text.encode(), capture_output=True, check=True).stdout


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def delimited(data):
    return varint(len(data)) + data


def floats(*values):
    return "".join(f"\\x{b:02x}" for b in struct.pack(f"<{len(values)}f", *values))


def tensor(shape, values, dtype="DTYPE_FLOAT32"):
    dims = " ".join(f"shape: {d}" for d in shape)
    return f'dtype: {dtype} {dims} data: "{floats(*values)}"'


def seeds(protoc):
    out = {}
    t = out.setdefault("tensor_codec", {})
    t["whole-2x3"] = b"\x01" + encode(protoc, "Tensor", tensor([2, 3], [0.5, -1, 2, 3, 4, 5]))
    t["whole-spec-2x3"] = b"\x03" + encode(protoc, "Tensor", tensor([2, 3], [1, 2, 3, 4, 5, 6]))
    t["whole-int64"] = b"\x05" + encode(protoc, "Tensor", 'dtype: DTYPE_INT64 shape: 2 data: "\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x00"')
    t["fields-f16"] = b"\x00\x02\x02\x02\x03" + bytes(12)
    t["fields-huge-dim"] = b"\x00\x01\x02\xff" + struct.pack("<q", 1 << 62) + b"\x02" + bytes(8)

    k = out.setdefault("tokenizer", {})
    k["text-news"] = b"\x00The jury said that the city's election was \"conducted\" -- fairly.\n"
    k["text-utf8"] = b"\x00caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 \xf0\x9f\x99\x82 and a bare \xe2\x80"
    k["text-bytes"] = b"\x00" + bytes(range(256))
    k["ids"] = b"\x01" + struct.pack("<8h", 1, 2, 3, 300, 4095, 4096, -1, 200)

    c = out.setdefault("cluster_file", {})
    c["local"] = b"\x01" + (ROOT / "deploy" / "local" / "cluster.json").read_bytes()
    c["compose"] = b"\x01" + (ROOT / "deploy" / "cluster.compose.json").read_bytes()
    c["ids"] = b"\x00\x08" + b"0-3,6"
    c["ids-all"] = b"\x00\x08" + b"all"

    p = out.setdefault("checkpoint", {})
    p["config"] = b"\x00" + (ROOT / "models" / "brown-moe" / "config.json").read_bytes()
    p["config-micro"] = b"\x00" + json.dumps({
        "name": "m", "vocab_size": 300, "d_model": 32, "n_heads": 4, "n_layers": 2,
        "context_length": 48, "n_experts": 4, "n_shared": 1, "granularity": 2, "top_k": 3,
        "d_ff": 64, "eos_id": 2}).encode()
    state = (ROOT / "tests" / "fuzz" / "state_seed.pt").read_bytes()
    p["state"] = b"\x01" + state
    p["checkpoint-dir"] = b"\x02" + state

    r = out.setdefault("requests", {})
    hidden = tensor([2, 32], [0.1 * i for i in range(64)])
    r["route"] = b"\x00" + encode(protoc, "RouteRequest", f"layer: 1 hidden {{ {hidden} }} return_probs: true")
    r["set-policy"] = b"\x02" + encode(protoc, "SetPolicyRequest", "policy { top_k: 2 noise_std: 0.5 capacity_factor: 1.25 noise_seed: 9 }")
    r["report-failure"] = b"\x04" + encode(protoc, "ReportPoolFailureRequest", 'pool: "pool-b" error: "gone"')
    r["register"] = b"\x05" + encode(protoc, "RegisterPoolRequest", 'name: "pool-z" address: "127.0.0.1:1" device: "cpu" model_id: "x"')
    r["drain"] = b"\x06" + encode(protoc, "DrainPoolRequest", 'pool: "pool-b"')
    r["rebalance"] = b"\x07"
    r["forward"] = b"\x08" + encode(protoc, "ForwardRequest", f"layer: 0 hidden {{ {hidden} }} work {{ expert: 3 rows: 0 rows: 1 }} work {{ expert: 0 shared: true rows: 1 }}")
    r["describe"] = b"\x09"
    r["load"] = b"\x0a" + encode(protoc, "ChangeExpertsRequest", "experts { layer: 1 experts: 0 experts: 1 }")
    r["drop"] = b"\x0b" + encode(protoc, "ChangeExpertsRequest", "experts { layer: 0 experts: 3 }")
    r["model-info"] = b"\x0c"
    r["complete"] = b"\x0e" + encode(protoc, "GenerateRequest", 'prompt: "abc" max_tokens: 3 temperature: 0 echo_prompt: true')
    r["generate"] = b"\x0f" + encode(protoc, "GenerateRequest", 'prompt: "hello" max_tokens: 2 top_k: 5 top_p: 0.9 seed: 4 include_probs: true')
    r["watch"] = b"\x10" + encode(protoc, "WatchRoutingRequest", "layers: 0 sample_rate: 0.5 queue_size: 8")

    info = encode(protoc, "ModelInfo", 'name: "tiny" vocab_size: 300 d_model: 32 n_heads: 4 n_layers: 2 context_length: 48 n_experts: 4 n_shared: 1 granularity: 2 top_k: 3 d_ff: 64')
    placement = encode(protoc, "Placement", 'epoch: 3 pools { name: "pool-a" address: "127.0.0.1:5" hosts { layer: 0 experts: 0 experts: 1 shared: 0 } healthy: true }')
    events = [
        encode(protoc, "RoutingEvent", 'time_unix_micros: 1 started { request_id: "r1" prompt: "The" prompt_tokens: 1 max_tokens: 2 }'),
        encode(protoc, "RoutingEvent", 'time_unix_micros: 2 token { request_id: "r1" position: 0 token_id: 5 text: "The" routing { layer: 1 experts { id: 5 expert: 2 micro: 1 weight: 0.6 pool: "pool-a" } shared { expert: 0 pool: "pool-a" } probs: 0.1 probs: 0.9 } }'),
        encode(protoc, "RoutingEvent", "time_unix_micros: 3 load { interval_ms: 1000 layers { layer: 0 tokens: 1 tokens: 0 tokens: 7 cv: 0.5 max_over_mean: 1.5 } }"),
        encode(protoc, "RoutingEvent", 'time_unix_micros: 4 finished { request_id: "r1" generated_tokens: 2 finish_reason: "length" }'),
    ]
    tr = out.setdefault("trace", {})
    tr["with-header"] = b"\x00" + delimited(info) + delimited(placement) + b"".join(map(delimited, events))
    tr["bare"] = b"\x01" + b"".join(map(delimited, events))

    v = out.setdefault("viewer_api", {})
    v["generate"] = b"\x00" + b'{"prompt": "The jury", "max_tokens": 8, "temperature": 0.8, "seed": "18446744073709551615", "include_probs": true, "echo_prompt": false}'
    v["policy"] = b"\x01" + b'{"top_k": 1, "noise_std": 0.5, "capacity_factor": null, "noise_seed": 3}'
    v["list"] = b"\x02" + b"0-3,6"
    v["address"] = b"\x03" + b"[::1]:8080"
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protoc", default="protoc")
    args = ap.parse_args()
    for target, files in seeds(args.protoc).items():
        d = CORPUS / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for name, data in files.items():
            (d / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(files)} seeds")


if __name__ == "__main__":
    main()
