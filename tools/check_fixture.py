#!/usr/bin/env python3
"""Recompute a tiny fixture's reference outputs with transformers and compare.

Each fixture folder (config.json, model.safetensors, reference.safetensors) holds
outputs recorded by the reference implementation. This tool reloads the checkpoint
with transformers (float32, eager attention, CPU), recomputes

  * the logits for `input_ids` (no KV cache),
  * the hidden states (embedding output, each layer's output, the final norm),
  * the greedy continuation of row 0 (first T/2 tokens, then 12 new tokens, KV cache on),

and prints the max abs difference against the recorded tensors. It is a sanity check
that the local Python environment reproduces the recorded references before it is
used to produce new reference data (see make_hub_variants.py, make_grad_reference.py).

Usage:
  python tools/check_fixture.py FIXTURE_DIR [FIXTURE_DIR ...]
  python tools/check_fixture.py --all /path/to/hf-tiny
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402


def model_class(folder):
    """The class named in config.json's `architectures`, else the Auto class.

    Going by `architectures` lets a checkpoint whose `model_type` transformers does
    not register (e.g. `kimi_k2`, which is the DeepSeek-V3 layout) load with the
    class that wrote it.
    """
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    for name in cfg.get("architectures") or []:
        cls = getattr(transformers, name, None)
        if cls is not None:
            return cls
    return AutoModelForCausalLM


def alias_conversion_mapping(folder, cls):
    """Let an unregistered `model_type` reuse its class's checkpoint conversions.

    transformers 5 converts checkpoint tensors on load (e.g. DeepSeek-V3's per-expert
    `experts.{i}.gate_proj.weight` into the fused `experts.gate_up_proj`), looking the
    conversion up by the config's `model_type`. A `kimi_k2` checkpoint loaded into
    `DeepseekV3ForCausalLM` keeps `model_type: kimi_k2`, for which nothing is
    registered, so its expert weights would be dropped and re-initialised. Registering
    the `deepseek_v3` conversions under `kimi_k2` restores the intended loading.
    """
    from transformers.conversion_mapping import (
        get_checkpoint_conversion_mapping,
        register_checkpoint_conversion_mapping,
    )
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    with open(os.path.join(folder, "config.json")) as f:
        model_type = json.load(f).get("model_type")
    if not model_type or model_type in CONFIG_MAPPING:
        return
    base = getattr(cls, "config_class", None)
    base_type = getattr(base, "model_type", None)
    if not base_type or get_checkpoint_conversion_mapping(model_type) is not None:
        return
    mapping = get_checkpoint_conversion_mapping(base_type)
    if mapping is not None:
        register_checkpoint_conversion_mapping(model_type, mapping)


def load_model(folder, dtype=torch.float32, cls=None):
    cls = cls or model_class(folder)
    if cls is not AutoModelForCausalLM:
        alias_conversion_mapping(folder, cls)
    model = cls.from_pretrained(
        folder, dtype=dtype, attn_implementation="eager", local_files_only=True
    )
    model.eval()
    return model


@torch.no_grad()
def forward_outputs(model, input_ids):
    out = model(input_ids=input_ids, use_cache=False, output_hidden_states=True)
    return out.logits.float(), [h.float() for h in out.hidden_states]


@torch.no_grad()
def greedy(model, prompt, new_tokens):
    out = model.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        use_cache=True,
        pad_token_id=0,
        eos_token_id=None,
    )
    return out


def check(folder, new_tokens=12):
    ref = load_file(os.path.join(folder, "reference.safetensors"))
    model = load_model(folder)
    ids = ref["input_ids"]
    logits, hidden = forward_outputs(model, ids)
    result = {"fixture": os.path.basename(os.path.normpath(folder)),
              "class": type(model).__name__}
    result["logits_max_abs_diff"] = (logits - ref["logits"]).abs().max().item()
    hs_diffs = []
    for i, h in enumerate(hidden):
        key = f"hidden_states.{i}"
        if key in ref:
            hs_diffs.append((h - ref[key]).abs().max().item())
    result["hidden_states_compared"] = len(hs_diffs)
    result["hidden_states_max_abs_diff"] = max(hs_diffs) if hs_diffs else None
    if "greedy_ids" in ref:
        g_ref = ref["greedy_ids"]
        n_new = new_tokens
        prompt = g_ref[:, : g_ref.shape[1] - n_new]
        g = greedy(model, prompt, n_new)
        result["greedy_match"] = bool(torch.equal(g, g_ref))
        if not result["greedy_match"]:
            result["greedy_ids"] = g.tolist()
            result["greedy_ref"] = g_ref.tolist()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="*", help="fixture folders")
    ap.add_argument("--all", metavar="ROOT",
                    help="check every sub-folder of ROOT that has a reference.safetensors")
    ap.add_argument("--new-tokens", type=int, default=12,
                    help="greedy tokens recorded after the prompt (default 12)")
    ap.add_argument("--tol", type=float, default=1e-4,
                    help="max abs logit difference counted as a match (default 1e-4)")
    args = ap.parse_args()
    torch.manual_seed(0)
    folders = list(args.folders)
    if args.all:
        for name in sorted(os.listdir(args.all)):
            p = os.path.join(args.all, name)
            if os.path.isfile(os.path.join(p, "reference.safetensors")):
                folders.append(p)
    if not folders:
        ap.error("no fixture folder given")
    ok = True
    rows = []
    for f in folders:
        r = check(f, args.new_tokens)
        good = r["logits_max_abs_diff"] <= args.tol and r.get("greedy_match", True)
        r["ok"] = good
        ok &= good
        print(json.dumps(r), flush=True)
        rows.append(r)
    print()
    print(f"{'fixture':<16}{'class':<28}{'logits maxdiff':>16}{'hidden maxdiff':>16}  greedy")
    for r in rows:
        hs = r["hidden_states_max_abs_diff"]
        print(f"{r['fixture']:<16}{r['class']:<28}{r['logits_max_abs_diff']:>16.3e}"
              f"{(hs if hs is not None else float('nan')):>16.3e}  "
              f"{'match' if r.get('greedy_match') else 'DIFFER'}")
    print(f"torch {torch.__version__}, transformers {__import__('transformers').__version__}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
