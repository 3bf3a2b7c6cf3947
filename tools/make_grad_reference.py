#!/usr/bin/env python3
"""Record PyTorch gradients of a whole fixture model, for the autograd crate's checks.

For one hf-tiny fixture (default: qwen3) this loads the checkpoint with transformers
(float32, eager attention, CPU), computes the training loss the fixtures use, the mean
next-token cross-entropy over the whole batch:

    loss = cross_entropy(logits[:, :-1].reshape(-1, V), input_ids[:, 1:].reshape(-1))

at the fixture's `input_ids`, back-propagates it once, and saves the gradient with
respect to a few named parameters. The loss is checked against the fixture's recorded
`train_losses[0]` (same weights, same batch) before anything is written.

Output (float32 safetensors, default llm/tests/data/grad-reference/<fixture>.safetensors):
  input_ids         int64 [B, T]   the fixture's batch
  loss              f32 [1]
  grad.<param name> f32, the parameter's shape (e.g. grad.model.norm.weight)

With tied embeddings (qwen3), `model.embed_tokens.weight` is also the output head, so
its gradient is the sum of both uses.

Usage:
  python tools/make_grad_reference.py --fixtures /path/to/hf-tiny
  python tools/make_grad_reference.py --fixture smollm3 --params model.norm.weight
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_fixture import load_model  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_CANDIDATES = [
    os.path.join(REPO, "llm", "tests", "data", "hf-tiny"),
    os.path.join(REPO, "shared", "fixtures", "hf-tiny"),
    os.path.join(os.path.dirname(REPO), "shared", "fixtures", "hf-tiny"),
]
DEFAULT_PARAMS = [
    "model.embed_tokens.weight",
    "model.layers.0.input_layernorm.weight",
    "model.layers.0.self_attn.q_proj.weight",
    "model.layers.0.self_attn.k_norm.weight",
    "model.layers.3.mlp.down_proj.weight",
    "model.norm.weight",
]


def next_token_loss(logits, ids):
    v = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, v).float(), ids[:, 1:].reshape(-1))


def main():
    default_fx = next((p for p in FIXTURE_CANDIDATES if os.path.isdir(p)), None)
    ap = argparse.ArgumentParser(description="Record whole-model gradients of the mean "
                                             "next-token cross-entropy for a fixture.")
    ap.add_argument("--fixtures", default=default_fx, help="the hf-tiny folder")
    ap.add_argument("--fixture", default="qwen3", help="fixture name (default qwen3)")
    ap.add_argument("--params", nargs="+", default=DEFAULT_PARAMS,
                    help="parameter names whose gradients are saved")
    ap.add_argument("--out", default=None,
                    help="output file (default llm/tests/data/grad-reference/<fixture>.safetensors)")
    args = ap.parse_args()
    if not args.fixtures:
        ap.error("no hf-tiny folder found; pass --fixtures")
    out = args.out or os.path.join(REPO, "llm", "tests", "data", "grad-reference",
                                   f"{args.fixture}.safetensors")
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    folder = os.path.join(args.fixtures, args.fixture)
    ref = load_file(os.path.join(folder, "reference.safetensors"))
    ids = ref["input_ids"]

    model = load_model(folder)
    model.train(False)  # no dropout (all zero anyway); gradients still flow
    params = dict(model.named_parameters(remove_duplicate=False))
    missing = [p for p in args.params if p not in params]
    if missing:
        raise SystemExit(f"no such parameters: {missing}; have e.g. {list(params)[:8]}")
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids, use_cache=False).logits
    loss = next_token_loss(logits, ids)
    loss.backward()

    recorded = ref["train_losses"][0].item() if "train_losses" in ref else None
    if recorded is not None and abs(loss.item() - recorded) > 1e-5:
        raise SystemExit(f"loss {loss.item()} differs from the fixture's train_losses[0] {recorded}")

    tensors = {"input_ids": ids.contiguous(), "loss": loss.detach().reshape(1).float()}
    summary = {}
    for name in args.params:
        g = params[name].grad
        tensors[f"grad.{name}"] = g.detach().float().contiguous()
        summary[name] = {"shape": list(g.shape), "abs_max": g.abs().max().item(),
                         "norm": g.norm().item()}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    # metadata kept to one key: safetensors writes a map's keys in no fixed order, and
    # the file should come out byte-identical from one run to the next
    save_file(tensors, out, metadata={"format": "pt"})
    print(json.dumps({"fixture": args.fixture, "loss": loss.item(),
                      "fixture_train_losses_0": recorded, "out": os.path.relpath(out, REPO),
                      "grads": summary}, indent=2))


if __name__ == "__main__":
    main()
