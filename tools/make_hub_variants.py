#!/usr/bin/env python3
"""Write Hub-style variants of the hf-tiny fixtures, with reference logits.

The hf-tiny fixtures are saved the transformers-5 way: float32, one
`model.safetensors`, RoPE settings under `rope_parameters`. Checkpoints as published on
the Hub mostly differ from that:

  * weights in bfloat16 (a few tensors sometimes kept in float32),
  * sharded: `model-0000k-of-0000n.safetensors` + `model.safetensors.index.json`,
  * RoPE given by the older keys `rope_theta` + `rope_scaling` (with `type` or
    `rope_type`), plus `rope_local_base_freq` for Gemma 3,
  * multimodal releases (Gemma 3 4B+, Mistral Small 3.1, Llama 4) nest the decoder's
    settings in `text_config` under a multimodal `model_type`, and name its tensors
    `language_model.model.*` / `language_model.lm_head.weight`, next to a vision tower
    and a projector.

For each variant this tool takes a fixture's weights, rounds them to bfloat16, writes
them under the names and in the layout such a release uses, with a config.json written
the Hub way, then loads the folder back with transformers (`from_pretrained(...,
dtype=torch.float32)`: the bf16 weights are upcast exactly to float32 and all compute
is float32, eager attention) and records its logits for the fixture's `input_ids`.

Output, per variant, under OUT (default llm/tests/data/hub-variants/<name>/):
  config.json, model.safetensors or model-*-of-*.safetensors + model.safetensors.index.json,
  reference.safetensors  (input_ids int64 [2,T], logits f32 [2,T,V]),
  VARIANT.md             (what the variant exercises)
and OUT/README.md with the table of checks. The checks, all required to pass:
  * transformers reports no missing, unexpected or mismatched tensor,
  * the variant's logits equal those of the fixture model with its weights rounded to
    bf16 in memory (max abs difference <= 1e-5): the Hub-style keys, names and
    nesting mean exactly what the fixture's transformers-5 form means,
  * the difference to the fixture's float32 logits (bf16 rounding of the weights only)
    is reported.

Vision towers are tiny and random (seeded); only the text path is run (no pixel values).

Usage:
  python tools/make_hub_variants.py --fixtures /path/to/hf-tiny
  python tools/make_hub_variants.py --fixtures /path/to/hf-tiny --only qwen3_sharded_bf16
"""
import argparse
import copy
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_fixture import load_model  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "llm", "tests", "data", "hub-variants")
FIXTURE_CANDIDATES = [
    os.path.join(REPO, "llm", "tests", "data", "hf-tiny"),
    os.path.join(REPO, "shared", "fixtures", "hf-tiny"),
    os.path.join(os.path.dirname(REPO), "shared", "fixtures", "hf-tiny"),
]
SEED = 1234
SAME_TOL = 1e-5

# ----------------------------------------------------------------------------------
# Hub-style config helpers
# ----------------------------------------------------------------------------------

# keys save_pretrained writes in the transformers-5 form that Hub configs do not have
V5_ONLY_KEYS = ("rope_parameters", "dtype", "transformers_version", "architectures",
                "output_router_logits")


def fixture_config(fx):
    with open(os.path.join(fx, "config.json")) as f:
        return json.load(f)


def hub_text_config(cfg, drop=(), rope_scaling_key="rope_type"):
    """The fixture's config rewritten with `rope_theta` + `rope_scaling` (old form).

    `rope_scaling_key` is the key naming the scaling kind: "rope_type" (newer releases)
    or "type" (DeepSeek-V3, Kimi K2 and other older releases).
    """
    out = {k: v for k, v in cfg.items() if k not in V5_ONLY_KEYS and k not in drop}
    rp = dict(cfg["rope_parameters"])
    out["rope_theta"] = rp.pop("rope_theta")
    kind = rp.pop("rope_type")
    if kind == "default":
        out["rope_scaling"] = None
    else:
        out["rope_scaling"] = {rope_scaling_key: kind, **rp}
    return out


def gemma3_hub_text_config(cfg):
    """Gemma 3's old form: global RoPE in rope_theta/rope_scaling, local base apart."""
    out = {k: v for k, v in cfg.items()
           if k not in V5_ONLY_KEYS and k not in ("layer_types", "_sliding_window_pattern")}
    rp = cfg["rope_parameters"]
    full = dict(rp["full_attention"])
    out["rope_theta"] = full.pop("rope_theta")
    kind = full.pop("rope_type")
    out["rope_scaling"] = None if kind == "default" else {"rope_type": kind, **full}
    local = dict(rp["sliding_attention"])
    assert local.get("rope_type", "default") == "default"
    out["rope_local_base_freq"] = local["rope_theta"]
    # the layer pattern as releases give it: one global layer every 6
    pattern = cfg["layer_types"]
    assert pattern == ["sliding_attention"] * 5 + ["full_attention"], pattern
    out["sliding_window_pattern"] = 6
    return out


def sort_config(d):
    return {k: d[k] for k in sorted(d)}


# ----------------------------------------------------------------------------------
# Building the transformers model that holds the fixture's weights
# ----------------------------------------------------------------------------------

def copy_text_weights(fixture_model, text_causal_lm):
    """Copy a fixture *ForCausalLM's weights into a (nested) *ForCausalLM-like module."""
    text_causal_lm.load_state_dict(fixture_model.state_dict(), strict=True)


def build_plain(fx_model, _variant):
    return fx_model


def build_gemma3_mm(fx_model, _variant):
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig
    vision = SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, image_size=28, patch_size=14,
                                vision_use_head=False)
    cfg = Gemma3Config(text_config=fx_model.config.to_dict(), vision_config=vision.to_dict(),
                       mm_tokens_per_image=4)
    torch.manual_seed(SEED)
    mm = Gemma3ForConditionalGeneration(cfg)
    mm.model.language_model.load_state_dict(fx_model.model.state_dict(), strict=True)
    mm.lm_head.weight.data.copy_(fx_model.lm_head.weight.data)
    return mm


def build_mistral3(fx_model, _variant):
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, PixtralVisionConfig
    vision = PixtralVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                 num_attention_heads=2, image_size=28, patch_size=14, head_dim=8)
    cfg = Mistral3Config(text_config=fx_model.config.to_dict(), vision_config=vision.to_dict(),
                         tie_word_embeddings=False)
    torch.manual_seed(SEED)
    mm = Mistral3ForConditionalGeneration(cfg)
    mm.model.language_model.load_state_dict(fx_model.model.state_dict(), strict=True)
    mm.lm_head.weight.data.copy_(fx_model.lm_head.weight.data)
    return mm


def build_llama4(fx_model, _variant):
    from transformers import Llama4Config, Llama4ForConditionalGeneration, Llama4VisionConfig
    vision = Llama4VisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, image_size=28, patch_size=14,
                                vision_output_dim=32, projector_input_dim=32,
                                projector_output_dim=32)
    cfg = Llama4Config(text_config=fx_model.config.to_dict(), vision_config=vision.to_dict())
    torch.manual_seed(SEED)
    mm = Llama4ForConditionalGeneration(cfg)
    copy_text_weights(fx_model, mm.language_model)
    return mm


# ----------------------------------------------------------------------------------
# The variants
# ----------------------------------------------------------------------------------

def cfg_qwen3(fx_cfg):
    c = hub_text_config(fx_cfg, drop=("layer_types",))
    c["architectures"] = ["Qwen3ForCausalLM"]
    c["torch_dtype"] = "bfloat16"
    return sort_config(c)


def cfg_deepseek_v3(fx_cfg):
    # DeepSeek-V3's config.json: `"type": "yarn"`, no head_dim / qk_head_dim /
    # rope_interleave (the interleaved rope layout is implied), MoE routing named
    c = hub_text_config(fx_cfg, drop=("head_dim", "qk_head_dim", "rope_interleave"),
                        rope_scaling_key="type")
    c.update({"architectures": ["DeepseekV3ForCausalLM"], "torch_dtype": "bfloat16",
              "topk_method": "noaux_tc", "scoring_func": "sigmoid", "moe_layer_freq": 1,
              "ep_size": 1, "aux_loss_alpha": 0.001, "seq_aux": True})
    return sort_config(c)


def cfg_gemma3_mm(fx_cfg, model):
    text = gemma3_hub_text_config(fx_cfg)
    vision = {k: v for k, v in model.config.vision_config.to_dict().items()
              if k in ("hidden_size", "image_size", "intermediate_size", "model_type",
                       "num_attention_heads", "num_hidden_layers", "patch_size",
                       "vision_use_head", "layer_norm_eps", "hidden_act")}
    c = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
         "boi_token_index": 255999, "eoi_token_index": 256000, "image_token_index": 262144,
         "eos_token_id": [1, 106], "initializer_range": 0.02, "mm_tokens_per_image": 4,
         "text_config": sort_config(text), "vision_config": sort_config(vision),
         "torch_dtype": "bfloat16"}
    return sort_config(c)


def cfg_mistral3(fx_cfg, model):
    text = hub_text_config(fx_cfg)
    vision = {k: v for k, v in model.config.vision_config.to_dict().items()
              if k in ("head_dim", "hidden_act", "hidden_size", "image_size",
                       "intermediate_size", "model_type", "num_attention_heads",
                       "num_channels", "num_hidden_layers", "patch_size")}
    vision["rope_theta"] = 10000.0
    # No top-level tie_word_embeddings (Mistral3Config defaults it to true); only the
    # text_config says false. The files carry language_model.lm_head.weight, and
    # transformers does not tie a head that the checkpoint gives with its own values.
    c = {"architectures": ["Mistral3ForConditionalGeneration"], "model_type": "mistral3",
         "image_token_index": 10, "multimodal_projector_bias": False,
         "projector_hidden_act": "gelu", "spatial_merge_size": 2, "vision_feature_layer": -1,
         "text_config": sort_config(text), "vision_config": sort_config(vision),
         "torch_dtype": "bfloat16"}
    return sort_config(c)


def cfg_llama4(fx_cfg, model):
    # Llama 4's text_config: rope_scaling llama3 under rope_type, `no_rope_layers: []`
    # (empty means "every 4th layer is NoPE"), no layer_types / moe_layers (derived
    # from the NoPE pattern and interleave_moe_layer_step)
    text = hub_text_config(fx_cfg, drop=("layer_types", "moe_layers"))
    assert fx_cfg["no_rope_layers"] == [int((i + 1) % 4 != 0)
                                        for i in range(fx_cfg["num_hidden_layers"])]
    assert fx_cfg["moe_layers"] == list(range(fx_cfg["interleave_moe_layer_step"] - 1,
                                              fx_cfg["num_hidden_layers"],
                                              fx_cfg["interleave_moe_layer_step"]))
    text["no_rope_layers"] = []
    vision = {k: v for k, v in model.config.vision_config.to_dict().items()
              if k in ("hidden_act", "hidden_size", "image_size", "intermediate_size",
                       "model_type", "num_attention_heads", "num_channels",
                       "num_hidden_layers", "patch_size", "norm_eps", "pixel_shuffle_ratio",
                       "projector_input_dim", "projector_output_dim", "vision_output_dim",
                       "vision_feature_select_strategy", "multi_modal_projector_bias",
                       "rope_theta")}
    c = {"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
         "boi_token_index": 200080, "eoi_token_index": 200081, "image_token_index": 200092,
         "text_config": sort_config(text), "vision_config": sort_config(vision),
         "torch_dtype": "bfloat16"}
    return sort_config(c)


VARIANTS = {
    "qwen3_sharded_bf16": {
        "fixture": "qwen3", "build": build_plain, "config": lambda fc, m: cfg_qwen3(fc),
        "shards": 3,
        "what": "Qwen3ForCausalLM in bf16, 3 shards + model.safetensors.index.json, "
                "`rope_theta` with `rope_scaling: null`, tied embeddings with no lm_head "
                "tensor in the files, no `layer_types` in config.json.",
    },
    "deepseek_v3_yarn_bf16": {
        "fixture": "deepseek_v3", "build": build_plain,
        "config": lambda fc, m: cfg_deepseek_v3(fc), "shards": 1,
        "keep_f32": ("e_score_correction_bias",),
        "what": "DeepseekV3ForCausalLM in bf16 (the router's `e_score_correction_bias` kept "
                "in f32, mixed dtypes in one file), single file, `rope_theta` + "
                "`rope_scaling: {type: yarn, factor, beta_fast, beta_slow, mscale, "
                "mscale_all_dim, original_max_position_embeddings}` (the key is `type`, not "
                "`rope_type`), no `rope_interleave`/`head_dim` keys (interleaved layout by "
                "default), per-expert tensors `mlp.experts.{i}.{gate,up,down}_proj.weight`.",
    },
    "gemma3_mm_sharded_bf16": {
        "fixture": "gemma3", "build": build_gemma3_mm, "config": cfg_gemma3_mm, "shards": 3,
        "rename": [("vision_tower.", "vision_tower.vision_model.")],
        "what": "Gemma3ForConditionalGeneration (`model_type: gemma3`) in bf16, 3 shards; "
                "the decoder in `text_config` with `rope_theta` (global) + `rope_scaling "
                "{rope_type: linear, factor: 8}` + `rope_local_base_freq` (sliding layers) "
                "and `sliding_window_pattern: 6` instead of layer_types; tensors "
                "`language_model.model.*`, tied embeddings (no lm_head tensor), plus a tiny "
                "SigLIP `vision_tower.vision_model.*` and `multi_modal_projector.*` to skip. "
                "(rope_theta 1e6 and rope_local_base_freq 1e4 equal Gemma 3's defaults, so "
                "these logits cannot tell a loader that ignores them from one that reads "
                "them; the linear factor 8 is not a default.)",
    },
    "mistral3_mm_bf16": {
        "fixture": "mistral_small", "build": build_mistral3, "config": cfg_mistral3,
        "shards": 2,
        "what": "Mistral3ForConditionalGeneration (`model_type: mistral3`, as Mistral Small "
                "3.1 ships) in bf16, 2 shards; decoder in `text_config` (`model_type: "
                "mistral`, `rope_theta` 1e9, `rope_scaling: null`); tensors "
                "`language_model.model.*` and `language_model.lm_head.weight` (untied: "
                "`text_config.tie_word_embeddings: false` and no top-level key, whose "
                "Mistral3Config default is true; the head is in the files, so use it), plus a tiny Pixtral `vision_tower.*` "
                "and `multi_modal_projector.*` to skip.",
    },
    "llama4_mm_bf16": {
        "fixture": "llama4", "build": build_llama4, "config": cfg_llama4, "shards": 2,
        "what": "Llama4ForConditionalGeneration (`model_type: llama4`) in bf16, 2 shards; "
                "decoder in `text_config` with `rope_theta` + `rope_scaling {rope_type: "
                "llama3, factor, low_freq_factor, high_freq_factor, "
                "original_max_position_embeddings}`, `no_rope_layers: []` (empty = NoPE "
                "every 4th layer) and no layer_types/moe_layers; tensors "
                "`language_model.model.*` (fused experts `feed_forward.experts.gate_up_proj`"
                " / `down_proj`) and `language_model.lm_head.weight`, plus a tiny "
                "`vision_model.*` and `multi_modal_projector.*` to skip.",
    },
}


# ----------------------------------------------------------------------------------
# Writing and checking
# ----------------------------------------------------------------------------------

def saved_tensors(model):
    """Tensors under the names `save_pretrained` gives them (the checkpoint names).

    transformers 5 reverts its load-time conversions when saving, so this yields the
    names releases use (e.g. per-expert DeepSeek tensors, `language_model.model.*`).
    """
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, max_shard_size="1GB")
        tensors = {}
        for name in sorted(os.listdir(tmp)):
            if name.endswith(".safetensors"):
                with safe_open(os.path.join(tmp, name), "pt") as f:
                    for k in f.keys():
                        tensors[k] = f.get_tensor(k).clone()
    return tensors


def rename(tensors, rules):
    out = {}
    for k, v in tensors.items():
        for old, new in rules:
            if k.startswith(old):
                k = new + k[len(old):]
                break
        out[k] = v
    return out


def to_hub_dtype(tensors, keep_f32=()):
    out = {}
    for k, v in tensors.items():
        if v.is_floating_point() and not any(s in k for s in keep_f32):
            v = v.to(torch.bfloat16)
        out[k] = v.contiguous()
    return out


def write_weights(folder, tensors, shards):
    meta = {"format": "pt"}
    if shards <= 1:
        save_file(tensors, os.path.join(folder, "model.safetensors"), metadata=meta)
        return ["model.safetensors"]
    names = sorted(tensors)
    total = sum(tensors[k].numel() * tensors[k].element_size() for k in names)
    per = total / shards
    groups, acc = [[]], 0
    for k in names:
        nbytes = tensors[k].numel() * tensors[k].element_size()
        if acc >= per * len(groups) and len(groups) < shards:
            groups.append([])
        groups[-1].append(k)
        acc += nbytes
    assert len(groups) == shards, (len(groups), shards)
    weight_map, files = {}, []
    for i, group in enumerate(groups):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: tensors[k] for k in group}, os.path.join(folder, fname), metadata=meta)
        files.append(fname)
        for k in group:
            weight_map[k] = fname
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return files + ["model.safetensors.index.json"]


def round_to_bf16_(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))


@torch.no_grad()
def logits_of(model, ids):
    return model(input_ids=ids, use_cache=False).logits.float()


def make_variant(name, spec, fixtures, out_root):
    fx = os.path.join(fixtures, spec["fixture"])
    ref = load_file(os.path.join(fx, "reference.safetensors"))
    ids = ref["input_ids"]
    fx_cfg = fixture_config(fx)

    fx_model = load_model(fx)
    model = spec["build"](fx_model, spec)
    model.eval()
    tensors = saved_tensors(model)
    tensors = rename(tensors, spec.get("rename", []))
    tensors = to_hub_dtype(tensors, spec.get("keep_f32", ()))
    config = spec["config"](fx_cfg, model)

    folder = os.path.join(out_root, name)
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    files = write_weights(folder, tensors, spec["shards"])

    # load the variant exactly as a user would, float32 compute on upcast bf16 weights
    cls = getattr(transformers, config["architectures"][0])
    loaded, info = quiet_from_pretrained(cls, folder, dtype=torch.float32,
                                         attn_implementation="eager")
    loaded.eval()
    problems = {k: sorted(v) for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"{name}: transformers did not load every tensor: {problems}")
    logits = logits_of(loaded, ids)

    # the same weights through the fixture's own form, rounded to bf16 in memory
    fx_bf16 = load_model(fx)
    round_to_bf16_(fx_bf16)
    same = (logits - logits_of(fx_bf16, ids)).abs().max().item()
    vs_f32 = (logits - ref["logits"]).abs().max().item()
    if same > SAME_TOL:
        raise SystemExit(f"{name}: logits differ from the bf16-rounded fixture by {same:.3e}")

    save_file({"input_ids": ids.contiguous(), "logits": logits.contiguous()},
              os.path.join(folder, "reference.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "VARIANT.md"), "w") as f:
        f.write(f"# {name}\n\nFrom hf-tiny/{spec['fixture']}. {spec['what']}\n")

    size = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    row = {"variant": name, "fixture": spec["fixture"], "class": type(loaded).__name__,
           "files": files, "bytes": size,
           "max_abs_vs_bf16_rounded_fixture": same,
           "max_abs_vs_f32_fixture": vs_f32,
           "logit_std": logits.std().item()}
    print(json.dumps(row), flush=True)
    return row


def quiet_from_pretrained(cls, folder, **kw):
    """from_pretrained with output_loading_info, keeping transformers' log level.

    (With output_loading_info=True, transformers 5.23 leaves its logger at INFO.)
    """
    level = transformers.logging.get_verbosity()
    try:
        return cls.from_pretrained(folder, local_files_only=True, output_loading_info=True, **kw)
    finally:
        transformers.logging.set_verbosity(level)


def text_only_probe(name, out_root):
    """Whether the text-only *ForCausalLM class loads the decoder from a nested release."""
    folder = os.path.join(out_root, name)
    text_cls_name = {"gemma3": "Gemma3ForCausalLM", "mistral3": "MistralForCausalLM",
                     "llama4": "Llama4ForCausalLM"}
    with open(os.path.join(folder, "config.json")) as f:
        mt = json.load(f)["model_type"]
    if mt not in text_cls_name:
        return None
    cls = getattr(transformers, text_cls_name[mt])
    ref = load_file(os.path.join(folder, "reference.safetensors"))
    try:
        m, info = quiet_from_pretrained(cls, folder, dtype=torch.float32,
                                        attn_implementation="eager")
    except Exception as e:  # noqa: BLE001 - we report whatever transformers says
        return f"{cls.__name__} refuses it: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    m.eval()
    missing = len(info.get("missing_keys", []))
    unexpected = len(info.get("unexpected_keys", []))
    diff = (logits_of(m, ref["input_ids"]) - ref["logits"]).abs().max().item()
    if missing == 0:
        return (f"`{cls.__name__}.from_pretrained` loads the decoder from it (config as "
                f"{type(m.config).__name__}; {unexpected} vision/projector tensors reported "
                f"unexpected and skipped); its logits match to {diff:.1e}")
    return (f"`{cls.__name__}.from_pretrained` reads the config (as {type(m.config).__name__}) "
            f"but finds none of the decoder's tensors under `language_model.model.*`: "
            f"{missing} missing (left randomly initialised, a load report is printed, no "
            f"error), {unexpected} unexpected; logits off by {diff:.1f}")


def probe_rope_keys():
    """Config-level check, with non-default values, of how the old RoPE keys are read."""
    from transformers import DeepseekV3Config, Gemma3TextConfig, Llama4TextConfig, Qwen3Config
    checks = []

    def check(what, cfg_cls, old, expect):
        got = cfg_cls.from_dict(copy.deepcopy(old)).rope_parameters
        ok = all(got.get(k) == v for k, v in expect.items()) if "full_attention" not in expect \
            else all(all(got[t].get(k) == v for k, v in e.items()) for t, e in expect.items())
        checks.append({"what": what, "old": old, "rope_parameters": got, "ok": ok})
        print(json.dumps(checks[-1]), flush=True)

    check("gemma3_text: rope_theta -> full_attention, rope_local_base_freq -> sliding_attention, "
          "rope_scaling applies to full_attention only",
          Gemma3TextConfig, {"rope_theta": 2e6, "rope_local_base_freq": 2e4,
                             "rope_scaling": {"rope_type": "linear", "factor": 8.0}},
          {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 2e6},
           "sliding_attention": {"rope_type": "default", "rope_theta": 2e4}})
    check("gemma3_text without the keys: defaults 1e6 (global) and 1e4 (local)",
          Gemma3TextConfig, {},
          {"full_attention": {"rope_type": "default", "rope_theta": 1e6},
           "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
    check("deepseek_v3: rope_scaling {type: yarn} is read as rope_type yarn",
          DeepseekV3Config, {"rope_theta": 5e4, "rope_scaling": {
              "type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096,
              "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}},
          {"rope_type": "yarn", "rope_theta": 5e4, "factor": 40.0,
           "original_max_position_embeddings": 4096, "mscale_all_dim": 1.0})
    check("llama4_text: rope_scaling {rope_type: llama3}",
          Llama4TextConfig, {"rope_theta": 5e5, "rope_scaling": {
              "rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0,
              "high_freq_factor": 1.0, "original_max_position_embeddings": 8192}},
          {"rope_type": "llama3", "rope_theta": 5e5, "factor": 16.0,
           "original_max_position_embeddings": 8192})
    check("qwen3: rope_theta with rope_scaling null", Qwen3Config,
          {"rope_theta": 1e6, "rope_scaling": None}, {"rope_type": "default", "rope_theta": 1e6})
    return checks


def main():
    default_fx = next((p for p in FIXTURE_CANDIDATES if os.path.isdir(p)), None)
    ap = argparse.ArgumentParser(description="Write Hub-style bf16/sharded/nested variants "
                                             "of the hf-tiny fixtures with reference logits.")
    ap.add_argument("--fixtures", default=default_fx,
                    help="the hf-tiny folder (default: llm/tests/data/hf-tiny or "
                         "shared/fixtures/hf-tiny, whichever exists)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default %(default)s)")
    ap.add_argument("--only", nargs="+", choices=sorted(VARIANTS), help="variants to make")
    args = ap.parse_args()
    if not args.fixtures:
        ap.error("no hf-tiny folder found; pass --fixtures")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(SEED)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name in args.only or VARIANTS:
        row = make_variant(name, VARIANTS[name], args.fixtures, args.out)
        row["text_only_class"] = text_only_probe(name, args.out)
        rows.append(row)
    rope_checks = probe_rope_keys()
    if not all(c["ok"] for c in rope_checks):
        raise SystemExit("an old-style RoPE key is not read as expected")
    write_readme(args.out, rows, rope_checks)
    total = sum(r["bytes"] for r in rows)
    print(f"\n{'variant':<26}{'KiB':>8}{'vs bf16 fixture':>17}{'vs f32 fixture':>16}")
    for r in rows:
        print(f"{r['variant']:<26}{r['bytes'] / 1024:>8.0f}"
              f"{r['max_abs_vs_bf16_rounded_fixture']:>17.2e}{r['max_abs_vs_f32_fixture']:>16.2e}")
    print(f"total {total / 1024:.0f} KiB; torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    for r in rows:
        if r["text_only_class"]:
            print(f"{r['variant']}: {r['text_only_class']}")


def write_readme(out, rows, rope_checks):
    path = os.path.join(out, "README.md")
    old = {}
    if os.path.exists(path):  # keep rows of variants not regenerated this time
        with open(os.path.join(out, "index.json")) as f:
            old = {r["variant"]: r for r in json.load(f)["variants"]}
    for r in rows:
        old[r["variant"]] = r
    rows = [old[k] for k in VARIANTS if k in old]
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__,
                   "variants": rows}, f, indent=2)
        f.write("\n")
    lines = [
        "# hub-variants: the hf-tiny fixtures as Hub releases lay them out",
        "",
        "Made by `tools/make_hub_variants.py` from the hf-tiny fixtures (see `tools/README.md`).",
        "Each folder holds one fixture's weights rounded to bfloat16 and written the way",
        "published checkpoints are (sharded or not, old-style RoPE keys, nested multimodal",
        "configs and `language_model.*` tensor names), with:",
        "",
        "- `reference.safetensors`: `input_ids` (the fixture's, int64 [2, T]) and `logits`",
        "  (f32 [2, T, V]) that transformers computes after loading *this folder* with",
        "  `from_pretrained(folder, dtype=torch.float32, attn_implementation=\"eager\")`:",
        "  the bf16 weights are upcast exactly to f32 and all compute is f32, so a loader",
        "  that converts bf16 to f32 and computes in f32 should match to about 1e-4.",
        "- `VARIANT.md`: what the folder exercises.",
        "",
        "Checks made when writing them: transformers loads every tensor (none missing,",
        "unexpected or mismatched); the logits equal those of the fixture's own",
        "transformers-5 form with its weights rounded to bf16 in memory (column",
        "\"vs bf16 fixture\", must be <= 1e-5), which shows the old-style keys mean the same",
        "model; \"vs f32 fixture\" is the distance to the fixture's recorded f32 logits, the",
        "effect of rounding the weights to bf16.",
        "",
        "| variant | fixture | loaded as | files | vs bf16 fixture | vs f32 fixture |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        files = len([f for f in r["files"] if f.endswith(".safetensors")])
        lines.append(f"| {r['variant']} | {r['fixture']} | {r['class']} | {files} shard(s) | "
                     f"{r['max_abs_vs_bf16_rounded_fixture']:.1e} | "
                     f"{r['max_abs_vs_f32_fixture']:.1e} |")
    lines += ["", "What each exercises:", ""]
    for r in rows:
        lines.append(f"- **{r['variant']}**: {VARIANTS[r['variant']]['what']}")
    lines += ["", "How transformers reads the old RoPE keys (config-level check with non-default",
              "values, made by the same tool):", ""]
    for c in rope_checks:
        lines.append(f"- {c['what']}: `{json.dumps(c['old'])}` -> `rope_parameters` "
                     f"`{json.dumps(c['rope_parameters'])}`")
    notes = [r for r in rows if r.get("text_only_class")]
    if notes:
        lines += ["", "Loading a nested release with the text-only class:", ""]
        for r in notes:
            lines.append(f"- {r['variant']}: {r['text_only_class']}.")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
