#!/usr/bin/python3
"""An independent PyTorch implementation of the model family, used as an oracle.

It rebuilds the architecture from a checkpoint's config.json and state dict with plain PyTorch
ops (dense: every expert on every token, masked to the top-k) and compares its logits with the
C++ engine's (written by `moe-train logits`). Nothing here is shared with the C++ code.

Usage: /usr/bin/python3 tests/reference/reference_moe.py MODEL_DIR LOGITS.pt [--tol 1e-4]
"""
import argparse
import json
import math
import sys

import torch
import torch.nn.functional as F


def layer_norm(x, sd, name):
    return F.layer_norm(x, (x.shape[-1],), sd[name + ".weight"], sd[name + ".bias"], 1e-5)


def attention(x, sd, p, n_heads):
    t, c = x.shape
    d = c // n_heads
    qkv = x @ sd[p + "qkv.weight"].T + sd[p + "qkv.bias"]  # [T, 3C] laid out as [3][H][D]
    q, k, v = qkv.split(c, dim=-1)
    q, k, v = (z.view(t, n_heads, d).transpose(0, 1) for z in (q, k, v))  # [H, T, D]
    att = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
    att = att.masked_fill(mask, float("-inf")).softmax(-1)
    y = (att @ v).transpose(0, 1).reshape(t, c)
    return y @ sd[p + "proj.weight"].T + sd[p + "proj.bias"]


def expert(x, w1, w2):
    return F.gelu(x @ w1.T) @ w2.T


def moe(x, sd, p, cfg):
    m = cfg.get("granularity", 1)
    n_experts = cfg["n_experts"]
    d_micro = cfg["d_ff"] // m
    probs = (x @ sd[p + "router.gate.weight"].T).softmax(-1)  # [T, E*m]
    order = torch.sort(probs, dim=-1, descending=True, stable=True).indices[:, : cfg["top_k"]]
    top = probs.gather(1, order)
    weights = top / top.sum(-1, keepdim=True)
    gate = torch.zeros_like(probs).scatter(1, order, weights)  # dense [T, E*m], 0 off the top-k
    out = torch.zeros_like(x)
    for e in range(n_experts):
        w1 = sd[f"{p}experts.{e}.w1.weight"]
        w2 = sd[f"{p}experts.{e}.w2.weight"]
        for j in range(m):
            s = slice(j * d_micro, (j + 1) * d_micro)
            out += gate[:, e * m + j : e * m + j + 1] * expert(x, w1[s], w2[:, s])
    for s_id in range(cfg.get("n_shared", 0)):
        out += expert(x, sd[f"{p}shared.{s_id}.w1.weight"], sd[f"{p}shared.{s_id}.w2.weight"])
    return out


def forward(tokens, sd, cfg):
    t = tokens.shape[0]
    x = sd["tok_emb.weight"][tokens] + sd["pos_emb.weight"][:t]
    for layer in range(cfg["n_layers"]):
        p = f"blocks.{layer}."
        x = x + attention(layer_norm(x, sd, p + "ln1"), sd, p + "attn.", cfg["n_heads"])
        x = x + moe(layer_norm(x, sd, p + "ln2"), sd, p + "moe.", cfg)
    return layer_norm(x, sd, "ln_f") @ sd["tok_emb.weight"].T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("logits")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    with open(f"{args.model}/config.json") as f:
        cfg = json.load(f)
    sd = {k: v.float() for k, v in torch.load(f"{args.model}/model.pt").items()}
    ours = torch.load(args.logits)
    with torch.no_grad():
        ref = forward(ours["tokens"].long(), sd, cfg)
    diff = (ref - ours["logits"]).abs().max().item()
    agree = (ref.argmax(-1) == ours["logits"].argmax(-1)).float().mean().item()
    print(f"reference: {ref.shape[0]} positions x {ref.shape[1]} logits, max |diff| {diff:.2e}, "
          f"argmax agreement {agree:.3f}")
    if not diff <= args.tol:
        print(f"FAIL: logits differ by {diff:.3e} > {args.tol:.0e}")
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
