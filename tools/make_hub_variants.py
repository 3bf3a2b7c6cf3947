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

Quantized releases (variants with a "quant" entry) are written as the release ships
them, with this tool's own quantizer:

  * gpt_oss_mxfp4, as openai/gpt-oss-20b: the routed experts in MXFP4. The fused
    parameters `experts.gate_up_proj` [E, H, 2I] and `experts.down_proj` [E, I, H] are
    stored transposed (a row per output channel) as `<proj>_blocks` uint8
    [E, rows, cols/32, 16] + `<proj>_scales` uint8 [E, rows, cols/32]: per group of 32
    weights an E8M0 scale 2^(s-127), the smallest that brings the group's max to <= 6;
    each weight the nearest E2M1 code (magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6; bit 3
    the sign), weight 2j in the low nibble of byte j, 2j+1 in its high nibble. The rest
    in bf16; `quantization_config {quant_method: mxfp4, modules_to_not_convert}` in
    config.json.
  * deepseek_v3_fp8, as deepseek-ai/DeepSeek-V3: every Linear weight of the decoder
    layers in float8_e4m3fn with a float32 `weight_scale_inv` per [bn, bk] tile
    (amax / 448; the last tiles ragged where bn / bk do not divide the matrix), the
    router, norms, embeddings and head in bf16 (correction bias f32);
    `quantization_config {quant_method: fp8, fmt: e4m3, activation_scheme: dynamic,
    weight_block_size}`.

Their reference is transformers loading the folder in float32 and dequantizing on load
(`Mxfp4Config(dequantize=True)` / `FineGrainedFP8Config(dequantize=True)`; the FP8 one
needs the `accelerate` package), which must agree (<= 1e-5) with the fixture holding,
in memory, this tool's own dequantization of the codes. transformers 5.23 cannot read
ragged FP8 tiles (it derives the tile size from the scale grid), so for deepseek_v3_fp8
the in-memory model gives `logits`, the same writer with a block dividing every matrix
is checked against transformers instead, and `logits_bf16` (the dequantized weights
rounded to bf16) is recorded as well. VARIANT.md lists every tensor and the numbers.

Usage:
  python tools/make_hub_variants.py --fixtures /path/to/hf-tiny
  python tools/make_hub_variants.py --fixtures /path/to/hf-tiny --only qwen3_sharded_bf16
  python tools/make_hub_variants.py --only gpt_oss_mxfp4 deepseek_v3_fp8

With --only, the other variants' folders are left as they are and their rows are kept
in index.json / README.md.
"""
import argparse
import copy
import json
import os
import re
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
# Quantized releases: MXFP4 experts (gpt-oss), block-wise FP8 linears (DeepSeek-V3)
# ----------------------------------------------------------------------------------

# E2M1 magnitudes by the low 3 bits of a code; bit 3 (code 8..15) is the sign
E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
MXFP4_GROUP = 32          # weights per E8M0 scale, along a stored row
E8M0_BIAS = 127           # scale byte s means 2^(s - 127)
FP8_E4M3_MAX = 448.0
LAYER_OR_EXPERT = re.compile(r"\.(layers|experts)\.\d+\.")


def e2m1_table():
    mags = torch.tensor(E2M1_MAGNITUDES, dtype=torch.float32)
    return torch.cat([mags, -mags])


def mxfp4_quantize(rows):
    """MXFP4 of `rows` [..., K] along its last axis: (blocks uint8 [..., K/32, 16],
    scales uint8 [..., K/32]).

    Each group of 32 consecutive weights shares the scale 2^e, e the smallest exponent
    with max|w| / 2^e <= 6 (the largest E2M1 magnitude); every weight / 2^e is rounded
    to the nearest E2M1 value (ties to the smaller magnitude). Byte j of a group's 16
    holds weight 2j in its low nibble and weight 2j+1 in its high nibble.
    """
    *lead, k = rows.shape
    assert k % MXFP4_GROUP == 0, rows.shape
    groups = rows.float().reshape(*lead, k // MXFP4_GROUP, MXFP4_GROUP)
    amax = groups.abs().amax(dim=-1)
    e = torch.ceil(torch.log2(amax / 6.0))
    e = torch.where(amax > 0, e, torch.full_like(e, -E8M0_BIAS))
    # log2 is not exact: settle on the smallest e with amax * 2^-e <= 6 (exact comparisons)
    e = torch.where(torch.ldexp(amax, -e) > 6.0, e + 1, e)
    e = torch.where((amax > 0) & (torch.ldexp(amax, -(e - 1)) <= 6.0), e - 1, e)
    e = e.clamp(-E8M0_BIAS, E8M0_BIAS)
    x = torch.ldexp(groups, -e.unsqueeze(-1))
    mags = torch.tensor(E2M1_MAGNITUDES, dtype=torch.float32)
    nearest = (x.abs().unsqueeze(-1) - mags).abs().argmin(dim=-1)
    codes = (nearest | ((x < 0).long() << 3)).to(torch.uint8)
    blocks = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return blocks.contiguous(), (e + E8M0_BIAS).to(torch.uint8).contiguous()


def mxfp4_dequantize(blocks, scales):
    """The inverse of the packing: [..., G, 16] codes + [..., G] scales -> f32 [..., G*32]."""
    table = e2m1_table()
    lo, hi = table[(blocks & 0x0F).long()], table[(blocks >> 4).long()]
    vals = torch.stack([lo, hi], dim=-1).flatten(-2)
    vals = torch.ldexp(vals, (scales.long() - E8M0_BIAS).unsqueeze(-1))
    return vals.flatten(-2)


def check_mxfp4_rounding(rows, blocks, scales):
    """Every decoded weight is an E2M1 value nearest to the weight at its group's scale,
    and that scale is the smallest power of two that puts the group's max at <= 6."""
    *lead, k = rows.shape
    groups = rows.float().reshape(*lead, k // MXFP4_GROUP, MXFP4_GROUP)
    step = torch.ldexp(torch.ones(scales.shape), scales.long() - E8M0_BIAS).unsqueeze(-1)
    decoded = mxfp4_dequantize(blocks, scales).reshape(groups.shape)
    err = (decoded - groups).abs()
    best = (groups.unsqueeze(-1) - e2m1_table() * step.unsqueeze(-1)).abs().amin(dim=-1)
    assert torch.equal(err, best), "an MXFP4 code is not the nearest E2M1 value"
    amax = groups.abs().amax(dim=-1)
    scaled = amax / step.squeeze(-1)
    assert bool(((scaled <= 6.0) & ((scaled > 3.0) | (amax == 0))).all()), "MXFP4 scale not minimal"


def quantize_mxfp4_experts(tensors, _quant):
    """gpt-oss as released: the routed experts' fused matrices as MXFP4, rest in bf16.

    The parameter `experts.gate_up_proj` [E, H, 2I] (its columns gate/up interleaved) is
    stored transposed, one row per output channel: `gate_up_proj_blocks` [E, 2I, H/32, 16]
    + `gate_up_proj_scales` [E, 2I, H/32]; `down_proj` [E, I, H] likewise as
    `down_proj_blocks` [E, H, I/32, 16] + `down_proj_scales` [E, H, I/32].
    Returns (the file's tensors, {checkpoint name: the dequantized f32 tensor}, details).
    """
    out, dequantized, worst = {}, {}, 0.0
    for name, value in tensors.items():
        if name.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
            assert value.dim() == 3, (name, value.shape)
            rows = value.transpose(1, 2)
            blocks, scales = mxfp4_quantize(rows)
            check_mxfp4_rounding(rows, blocks, scales)
            out[name + "_blocks"], out[name + "_scales"] = blocks, scales
            deq = mxfp4_dequantize(blocks, scales).reshape(rows.shape).transpose(1, 2)
            dequantized[name] = deq.contiguous()
            worst = max(worst, (deq - value.float()).abs().max().item())
        else:
            out[name] = value.to(torch.bfloat16).contiguous()
    assert dequantized, "no expert matrix found"
    details = {"quantized_tensors": len(dequantized) * 2, "max_abs_weight_error": worst,
               "group": MXFP4_GROUP, "scale": "E8M0 uint8, 2^(s-127)",
               "codes": "E2M1, 2 per byte, low nibble first"}
    return out, dequantized, details


# DeepSeek-V3's FP8 tensors: every Linear weight of the decoder layers, not the router
FP8_LINEAR = re.compile(
    r"^model\.layers\.\d+\.(self_attn\.(q_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|"
    r"o_proj)|mlp\.(shared_experts\.|experts\.\d+\.)?(gate_proj|up_proj|down_proj))\.weight$")


def fp8_quantize(weight, block):
    """Block-wise FP8 (E4M3) of a 2-D weight: (fp8 [R, C], scale_inv f32 [ceil(R/bn),
    ceil(C/bk)]), weight ~= fp8 * scale_inv of its tile; scale_inv = tile amax / 448.
    The last row / column of tiles may be partial (ragged)."""
    bn, bk = block
    r, c = weight.shape
    gr, gc = -(-r // bn), -(-c // bk)
    padded = torch.zeros(gr * bn, gc * bk, dtype=torch.float32)
    padded[:r, :c] = weight.float()
    tiles = padded.reshape(gr, bn, gc, bk)
    scale = tiles.abs().amax(dim=(1, 3)) / FP8_E4M3_MAX
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = (tiles / scale[:, None, :, None]).to(torch.float8_e4m3fn)
    q = q.reshape(gr * bn, gc * bk)[:r, :c].contiguous()
    assert not torch.isnan(q.float()).any()
    return q, scale.contiguous()


def fp8_dequantize(q, scale_inv, block):
    bn, bk = block
    r, c = q.shape
    tiles = scale_inv.repeat_interleave(bn, dim=0).repeat_interleave(bk, dim=1)[:r, :c]
    return q.float() * tiles


def quantize_fp8_linears(tensors, quant, block=None):
    """DeepSeek-V3 as released: decoder Linear weights in FP8 E4M3 with a float32
    `weight_scale_inv` per [bn, bk] tile; embeddings, head, router, norms in bf16 and the
    router's `e_score_correction_bias` in f32.
    Returns (the file's tensors, {checkpoint name: the dequantized f32 weight}, details)."""
    block = block or quant["block"]
    out, dequantized, ragged, worst = {}, {}, {}, 0.0
    for name, value in tensors.items():
        if FP8_LINEAR.match(name):
            q, scale_inv = fp8_quantize(value, block)
            out[name], out[name + "_scale_inv"] = q, scale_inv
            deq = fp8_dequantize(q, scale_inv, block)
            dequantized[name] = deq
            worst = max(worst, (deq - value.float()).abs().max().item())
            r, c = value.shape
            if r % block[0] or c % block[1]:
                kind = LAYER_OR_EXPERT.sub(lambda m: f".{m.group(1)}.*.", name)
                ragged[kind] = (f"[{r}, {c}] -> scale_inv {list(scale_inv.shape)}: "
                                + ", ".join(s for s in (
                                    f"last row tile {r % block[0]} of {block[0]} rows"
                                    if r % block[0] else "",
                                    f"last column tile {c % block[1]} of {block[1]} columns"
                                    if c % block[1] else "") if s))
        elif "e_score_correction_bias" in name:
            out[name] = value.float().contiguous()
        else:
            out[name] = value.to(torch.bfloat16).contiguous()
    assert dequantized, "no FP8 linear found"
    details = {"quantized_tensors": len(dequantized), "max_abs_weight_error": worst,
               "weight_block_size": list(block),
               "scale": "float32 weight_scale_inv = tile amax / 448",
               "ragged_tiles": ragged}
    return out, dequantized, details


def transformers_fp8_readings(file_tensors, dequantized):
    """How transformers' own FP8 dequantization reads each FP8 tensor kind of a folder.

    Fp8Dequantize (transformers 5.23) takes the tile size as rows // scale_rows and
    cols // scale_cols, so a ragged grid is either refused (not divisible) or read with
    the wrong tiles. Returns {tensor kind: what happens}, for the kinds not read exactly.
    """
    try:
        from transformers.integrations.finegrained_fp8 import Fp8Dequantize
        dequantize_one = Fp8Dequantize(None)._dequantize_one
    except (ImportError, AttributeError) as e:
        return {"(not probed)": f"{type(e).__name__}: {e}"}
    found = {}
    for name, q in file_tensors.items():
        if q.dtype != torch.float8_e4m3fn:
            continue
        kind = LAYER_OR_EXPERT.sub(lambda m: f".{m.group(1)}.*.", name)
        try:
            got = dequantize_one(q, file_tensors[name + "_scale_inv"], output_dtype=torch.float32)
            diff = (got - dequantized[name]).abs().max().item()
            if diff > 0:
                found[kind] = f"read with the wrong tiles: weights off by up to {diff:.2e}"
        except ValueError as e:
            found[kind] = f"refused: {str(e).rstrip('.')}"
    return found


def tensor_table(tensors):
    """Markdown rows: one per kind of tensor (layer / expert numbers as {l} / {e})."""
    kinds = {}
    for name, value in tensors.items():
        kind = re.sub(r"\.layers\.\d+\.", ".layers.{l}.", name)
        kind = re.sub(r"\.experts\.\d+\.", ".experts.{e}.", kind)
        k = kinds.setdefault(kind, {"dtype": str(value.dtype).removeprefix("torch."),
                                    "shapes": [], "layers": set()})
        assert k["dtype"] == str(value.dtype).removeprefix("torch."), name
        if list(value.shape) not in k["shapes"]:
            k["shapes"].append(list(value.shape))
        m = re.search(r"\.layers\.(\d+)\.", name)
        if m:
            k["layers"].add(int(m.group(1)))
    rows = ["| tensor | dtype | shape | layers |", "| --- | --- | --- | --- |"]
    for kind in sorted(kinds):
        k = kinds[kind]
        layers = ", ".join(str(i) for i in sorted(k["layers"])) or "-"
        shapes = " ".join(str(s) for s in k["shapes"])
        rows.append(f"| `{kind}` | {k['dtype']} | {shapes} | {layers} |")
    return rows


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


def cfg_deepseek_v3_fp8(fx_cfg, block):
    # DeepSeek-V3's quantization_config, with a block that fits these small matrices
    # (the release's is [128, 128])
    c = cfg_deepseek_v3(fx_cfg)
    c["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3",
                                "quant_method": "fp8", "weight_block_size": list(block)}
    return sort_config(c)


def cfg_gpt_oss_mxfp4(fx_cfg):
    # gpt-oss-20b's config.json: `rope_theta` + `rope_scaling {rope_type: yarn, factor,
    # beta_fast, beta_slow, original_max_position_embeddings, truncate}`, `layer_types`
    # kept, `experts_per_token` and `initial_context_length` next to the transformers
    # keys, `output_router_logits` written, no `swiglu_alpha` (1.702, transformers'
    # default) and no torch_dtype; the MXFP4 quantization_config as released
    assert fx_cfg.get("swiglu_alpha", 1.702) == 1.702
    c = hub_text_config(fx_cfg, drop=("swiglu_alpha",))
    c.update({"architectures": ["GptOssForCausalLM"],
              "output_router_logits": fx_cfg.get("output_router_logits", False),
              "experts_per_token": fx_cfg["num_experts_per_tok"],
              "initial_context_length":
                  fx_cfg["rope_parameters"]["original_max_position_embeddings"],
              "quantization_config": {
                  "modules_to_not_convert": ["model.layers.*.self_attn",
                                             "model.layers.*.mlp.router",
                                             "model.embed_tokens", "lm_head"],
                  "quant_method": "mxfp4"}})
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
    "gpt_oss_mxfp4": {
        "fixture": "gpt_oss", "build": build_plain,
        "config": lambda fc, m: cfg_gpt_oss_mxfp4(fc), "shards": 1,
        "quant": {"format": "mxfp4", "quantize": quantize_mxfp4_experts,
                  "load_config": lambda: transformers.Mxfp4Config(dequantize=True)},
        "what": "GptOssForCausalLM as openai/gpt-oss-20b ships it: the routed experts in MXFP4 "
                "(`mlp.experts.gate_up_proj_blocks` uint8 [E, 2I, H/32, 16] + "
                "`gate_up_proj_scales` uint8 [E, 2I, H/32], `down_proj_blocks` [E, H, I/32, 16] "
                "+ `down_proj_scales` [E, H, I/32]: one stored row per output channel, i.e. "
                "the transpose of the fused parameter, gate/up rows interleaved as its columns "
                "are; byte j of a 16-byte group holds weight 2j in its low nibble, 2j+1 in its "
                "high one; E2M1 codes, E8M0 scale 2^(s-127) per 32 weights), everything else "
                "(attention with biases and sinks, router, expert biases, norms, embeddings, "
                "lm_head) in bf16; config.json with `quantization_config {quant_method: mxfp4, "
                "modules_to_not_convert}`, `rope_theta` + `rope_scaling {rope_type: yarn, ..., "
                "truncate: false}`, `layer_types`, `experts_per_token`, "
                "`initial_context_length`.",
    },
    "deepseek_v3_fp8": {
        "fixture": "deepseek_v3", "build": build_plain, "shards": 1,
        "config": lambda fc, m: cfg_deepseek_v3_fp8(fc, (16, 32)),
        "keep_f32": ("e_score_correction_bias",),
        "quant": {"format": "fp8", "quantize": quantize_fp8_linears, "block": (16, 32),
                  # a block dividing every matrix, which transformers can read
                  # (see fp8_transformers_check)
                  "check_block": (8, 16),
                  "load_config": lambda: transformers.FineGrainedFP8Config(dequantize=True)},
        "what": "DeepseekV3ForCausalLM as deepseek-ai/DeepSeek-V3 ships it: every Linear weight "
                "of the decoder layers (`self_attn.{q_a,q_b,kv_a_proj_with_mqa,kv_b,o}_proj`, "
                "dense `mlp.{gate,up,down}_proj`, per-expert `mlp.experts.{e}.*` and "
                "`mlp.shared_experts.*`) as float8_e4m3fn with a float32 `weight_scale_inv` "
                "[ceil(rows/16), ceil(cols/32)] (weight = fp8 * scale_inv of its tile, "
                "scale_inv = tile amax / 448); embeddings, lm_head, router `mlp.gate.weight` "
                "and norms in bf16, `e_score_correction_bias` in f32; config.json as the "
                "deepseek_v3_yarn_bf16 variant's plus `quantization_config {activation_scheme: "
                "dynamic, fmt: e4m3, quant_method: fp8, weight_block_size: [16, 32]}` (the "
                "release's block is [128, 128]). Ragged tiles, as the release has in "
                "`kv_a_proj_with_mqa` (576 rows = 4.5 blocks of 128): here "
                "`kv_a_proj_with_mqa` [40, 64] (last row tile 8 rows) and `q_b_proj` [96, 48] "
                "(last column tile 16 columns). `reference.safetensors` also holds "
                "`logits_bf16`: the dequantized weights rounded to bf16 (f32 compute).",
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
    files = write_folder(folder, config, tensors, spec["shards"])

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


def fixture_with_tensors(fx, tensors):
    """The fixture (its own config.json and tensor names) holding `tensors` instead of its
    weights, loaded by transformers in float32 with eager attention."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(os.path.join(fx, "config.json"), tmp)
        save_file({k: v.float().contiguous() for k, v in tensors.items()},
                  os.path.join(tmp, "model.safetensors"), metadata={"format": "pt"})
        return load_model(tmp)


def write_folder(folder, config, tensors, shards):
    if os.path.isdir(folder):
        shutil.rmtree(folder)
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    return write_weights(folder, tensors, shards)


def load_quantized_folder(cls, folder, quant):
    """transformers loading a quantized folder as a user would on a CPU: f32, eager
    attention, the quantizer told to dequantize on load (what it falls back to anyway
    without a GPU or kernels; saying it keeps the result machine-independent).

    Returns (model, None, names left non-f32) or (None, why it refused, []). transformers
    5.23 leaves the folder's bf16 `.weight` tensors that have no FP8 scale in bf16 despite
    dtype=float32 (they pass through the FP8 dequantize op, which keeps their dtype); they
    are upcast here, exactly, so that all compute is f32.
    """
    try:
        model, info = quiet_from_pretrained(cls, folder, dtype=torch.float32,
                                            attn_implementation="eager",
                                            quantization_config=quant["load_config"]())
    except Exception as e:  # noqa: BLE001 - we report whatever transformers says
        # the first line; transformers' pointer to its printed load report is dropped
        text = (str(e).strip().splitlines() or [""])[0].split(" For details")[0]
        return None, f"{type(e).__name__}: {text[:300]}", []
    problems = {k: sorted(v) for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"{folder}: transformers did not load every tensor: {problems}")
    left = sorted(n for n, p in model.named_parameters()
                  if p.is_floating_point() and p.dtype != torch.float32)
    model.float()
    model.eval()
    return model, None, left


def kinds_of(names):
    return sorted({LAYER_OR_EXPERT.sub(lambda m: f".{m.group(1)}.*.", n) for n in names})


def make_quantized_variant(name, spec, fixtures, out_root):
    """A fixture written as a quantized release (spec["quant"]), with reference logits.

    The folder's `logits` come from transformers loading the folder (f32, dequantizing on
    load) when it can, and must then equal (<= 1e-5) those of the fixture holding, in
    memory, this tool's own dequantization of the codes (the other tensors rounded to bf16
    as stored): that shows the layout is the one transformers reads. If transformers
    refuses the folder, the in-memory model gives `logits` and the reason is recorded.
    """
    fx = os.path.join(fixtures, spec["fixture"])
    ref = load_file(os.path.join(fx, "reference.safetensors"))
    ids = ref["input_ids"]
    fx_cfg = fixture_config(fx)
    quant = spec["quant"]
    keep_f32 = spec.get("keep_f32", ())

    fx_model = load_model(fx)
    tensors = saved_tensors(fx_model)
    with safe_open(os.path.join(fx, "model.safetensors"), "pt") as f:
        fx_names = set(f.keys())
    # the checkpoint names are the fixture's own, so its tensors can be swapped by name
    assert set(tensors) == fx_names, sorted(set(tensors) ^ fx_names)[:8]
    file_tensors, dequantized, details = quant["quantize"](tensors, quant)
    config = spec["config"](fx_cfg, fx_model)
    folder = os.path.join(out_root, name)
    files = write_folder(folder, config, file_tensors, spec["shards"])

    def as_stored(k, v):
        return v.float() if any(s in k for s in keep_f32) else v.to(torch.bfloat16).float()

    in_memory = {k: dequantized[k] if k in dequantized else as_stored(k, v)
                 for k, v in tensors.items()}
    inmem_logits = logits_of(fixture_with_tensors(fx, in_memory), ids)

    cls = getattr(transformers, config["architectures"][0])
    loaded, refusal, left = load_quantized_folder(cls, folder, quant)
    extra = {}
    if loaded is not None:
        logits = logits_of(loaded, ids)
        same = (logits - inmem_logits).abs().max().item()
        if same > SAME_TOL:
            raise SystemExit(f"{name}: transformers' logits differ from the in-memory "
                             f"dequantized fixture by {same:.3e}")
        reference = "transformers"
    else:
        # nothing independent to compare with: the reference is the in-memory model
        logits, same, reference = inmem_logits, None, "in-memory"
    out = {"input_ids": ids.contiguous(), "logits": logits.contiguous()}

    if quant["format"] == "fp8":
        # the Rust loader's default: FP8 dequantized to bf16, f32 compute
        as_bf16 = {k: (v.to(torch.bfloat16).float() if k in dequantized else v)
                   for k, v in in_memory.items()}
        out["logits_bf16"] = logits_of(fixture_with_tensors(fx, as_bf16), ids).contiguous()
        extra["max_abs_logits_bf16_vs_logits"] = \
            (out["logits_bf16"] - logits).abs().max().item()
        extra["max_abs_logits_bf16_vs_f32_fixture"] = \
            (out["logits_bf16"] - ref["logits"]).abs().max().item()
        extra["transformers_fp8_readings"] = transformers_fp8_readings(file_tensors,
                                                                       dequantized)
        if quant.get("check_block"):
            extra["transformers_check"] = fp8_transformers_check(
                spec, quant, tensors, fx, fx_cfg, fx_model, ids, as_stored)

    save_file(out, os.path.join(folder, "reference.safetensors"), metadata={"format": "pt"})
    vs_f32 = (logits - ref["logits"]).abs().max().item()
    size_without_md = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    row = {"variant": name, "fixture": spec["fixture"], "class": cls.__name__,
           "files": files, "bytes": size_without_md,
           "max_abs_vs_bf16_rounded_fixture": same,
           "max_abs_vs_f32_fixture": vs_f32,
           "logit_std": logits.std().item(),
           "format": quant["format"], **details,
           "reference": reference,
           "transformers_load": refusal or "ok",
           "transformers_left_non_f32": kinds_of(left),
           **extra}
    with open(os.path.join(folder, "VARIANT.md"), "w") as f:
        f.write("\n".join(quantized_variant_md(name, spec, row, file_tensors)) + "\n")
    row["bytes"] = sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder))
    print(json.dumps(row), flush=True)
    return row


def fp8_transformers_check(spec, quant, tensors, fx, fx_cfg, fx_model, ids, as_stored):
    """The same FP8 writer with a block dividing every matrix, in a temporary folder that
    transformers can read: its logits against the in-memory dequantized fixture."""
    block = quant["check_block"]
    file_tensors, dequantized, details = quant["quantize"](tensors, quant, block=block)
    assert not details["ragged_tiles"], details["ragged_tiles"]
    config = dict(spec["config"](fx_cfg, fx_model))
    config["quantization_config"] = dict(config["quantization_config"],
                                         weight_block_size=list(block))
    in_memory = {k: dequantized[k] if k in dequantized else as_stored(k, v)
                 for k, v in tensors.items()}
    inmem_logits = logits_of(fixture_with_tensors(fx, in_memory), ids)
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(os.path.join(tmp, "v"), config, file_tensors, 1)
        cls = getattr(transformers, config["architectures"][0])
        loaded, refusal, left = load_quantized_folder(cls, os.path.join(tmp, "v"), quant)
        if loaded is None:
            raise SystemExit(f"transformers refuses FP8 even with block {block}: {refusal}")
        diff = (logits_of(loaded, ids) - inmem_logits).abs().max().item()
    if diff > SAME_TOL:
        raise SystemExit(f"FP8 with block {block}: transformers' logits differ from the "
                         f"in-memory dequantized fixture by {diff:.3e}")
    return {"weight_block_size": list(block), "max_abs_vs_dequantized_fixture": diff,
            "transformers_left_non_f32": kinds_of(left)}


def quantized_variant_md(name, spec, row, file_tensors):
    q = spec["quant"]
    lines = [f"# {name}", "", f"From hf-tiny/{spec['fixture']}. {spec['what']}", "",
             "## Tensors (model.safetensors)", ""]
    lines += tensor_table(file_tensors)
    lines += ["", "## Quantization", ""]
    if q["format"] == "mxfp4":
        lines += [
            f"- {row['quantized_tensors']} tensors (blocks + scales of the routed experts' "
            f"`gate_up_proj` and `down_proj` in every layer); groups of {row['group']} "
            "weights along a stored row (an output channel) share one E8M0 scale byte s "
            "(2^(s-127)), the smallest power of two that brings the group's largest "
            "magnitude to <= 6; each weight is the E2M1 code nearest to weight / scale "
            "(0, 0.5, 1, 1.5, 2, 3, 4, 6, codes 8-15 the negatives; ties to the smaller "
            "magnitude); byte j of a group's 16 holds weight 2j (low nibble) and 2j+1 (high "
            "nibble).",
            "- Decoding as transformers does (`convert_moe_packed_tensors`): "
            "`blocks [E, R, G, 16]` -> values `[E, R, G*32]` -> transpose -> the parameter "
            "`[E, G*32, R]`, i.e. `gate_up_proj` [E, H, 2I] and `down_proj` [E, I, H].",
            f"- Largest weight change from the fixture's f32: {row['max_abs_weight_error']:.3g}.",
        ]
    else:
        bn, bk = row["weight_block_size"]
        lines += [
            f"- {row['quantized_tensors']} tensors as float8_e4m3fn, each with "
            f"`<name>_scale_inv` float32 [ceil(rows/{bn}), ceil(cols/{bk})]; tile (i, j) "
            f"covers rows {bn}i..{bn}i+{bn - 1} and columns {bk}j..{bk}j+{bk - 1}; "
            "scale_inv = the tile's max |w| / 448, fp8 = (w / scale_inv) rounded by "
            "torch's `.to(torch.float8_e4m3fn)`; weight = fp8 * scale_inv.",
            "- Ragged tiles (the last tile row / column only partly covered):",
        ]
        lines += [f"  - `{k}`: {v}" for k, v in row["ragged_tiles"].items()]
        lines += [f"- Largest weight change from the fixture's f32: "
                  f"{row['max_abs_weight_error']:.3g}."]
    lines += ["", "## Reference", ""]
    if row["reference"] == "transformers":
        lines += [
            f"`logits`: transformers {transformers.__version__} loading this folder with "
            "`from_pretrained(folder, dtype=torch.float32, attn_implementation=\"eager\", "
            f"quantization_config={type(q['load_config']()).__name__}(dequantize=True))` "
            "(it dequantizes on load to the f32 parameters), f32 compute. They equal, to "
            f"{row['max_abs_vs_bf16_rounded_fixture']:.1e}, the logits of the fixture "
            "holding this tool's own dequantization of the codes (other tensors rounded to "
            "bf16 as stored), so the layout above is the one transformers reads.",
        ]
    else:
        lines += [
            f"`logits`: transformers {transformers.__version__} cannot load this folder "
            f"(`{row['transformers_load']}`; why, per tensor, "
            "below), so they come from the fixture model "
            "(transformers, f32, eager) holding in memory each FP8 weight dequantized in "
            "f32 as fp8 * scale_inv over its tiles, the other tensors as stored (bf16, "
            "the correction bias f32).",
        ]
    if q["format"] == "fp8":
        readings = row["transformers_fp8_readings"]
        if readings:
            lines += ["", "transformers' `Fp8Dequantize` takes the tile size as rows // "
                      "scale_rows and cols // scale_cols, which is wrong for a ragged grid:"]
            lines += [f"- `{k}`: {v}" for k, v in readings.items()]
        chk = row.get("transformers_check")
        if chk:
            lines += ["", f"Layout check: the same writer with block {chk['weight_block_size']}"
                      " (dividing every matrix), in a temporary folder, loaded by "
                      "transformers with FineGrainedFP8Config(dequantize=True): its logits "
                      f"equal the in-memory dequantized fixture's to "
                      f"{chk['max_abs_vs_dequantized_fixture']:.1e}. (transformers leaves the "
                      "folder's bf16 `.weight` tensors without a scale in bf16 despite "
                      "dtype=float32; the tool upcasts them, exactly, before the forward.)"]
        lines += ["", "`logits_bf16`: the same in-memory model with each dequantized FP8 "
                  "weight rounded to bfloat16 (what a loader that dequantizes FP8 to bf16 "
                  "holds), f32 compute."]
    lines += ["", "Max abs differences:", "",
              f"- `logits` vs the fixture's f32 logits: {row['max_abs_vs_f32_fixture']:.3g} "
              f"(logit std {row['logit_std']:.2f})"]
    if q["format"] == "fp8":
        lines += [f"- `logits_bf16` vs `logits`: {row['max_abs_logits_bf16_vs_logits']:.3g}",
                  f"- `logits_bf16` vs the fixture's f32 logits: "
                  f"{row['max_abs_logits_bf16_vs_f32_fixture']:.3g}"]
    return lines


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
        spec = VARIANTS[name]
        maker = make_quantized_variant if "quant" in spec else make_variant
        row = maker(name, spec, args.fixtures, args.out)
        row["text_only_class"] = text_only_probe(name, args.out)
        rows.append(row)
    rope_checks = probe_rope_keys()
    if not all(c["ok"] for c in rope_checks):
        raise SystemExit("an old-style RoPE key is not read as expected")
    write_readme(args.out, rows, rope_checks)
    total = sum(r["bytes"] for r in rows)
    print(f"\n{'variant':<26}{'KiB':>8}{'vs bf16 fixture':>17}{'vs f32 fixture':>16}")
    for r in rows:
        same = r["max_abs_vs_bf16_rounded_fixture"]
        same = f"{same:>17.2e}" if same is not None else f"{'(in memory)':>17}"
        print(f"{r['variant']:<26}{r['bytes'] / 1024:>8.0f}"
              f"{same}{r['max_abs_vs_f32_fixture']:>16.2e}")
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
        "Each folder holds one fixture's weights rounded to bfloat16, or quantized as a",
        "release ships them (MXFP4 experts for gpt-oss, block-wise FP8 for DeepSeek-V3), and",
        "written the way published checkpoints are (sharded or not, old-style RoPE keys,",
        "nested multimodal configs and `language_model.*` tensor names), with:",
        "",
        "- `reference.safetensors`: `input_ids` (the fixture's, int64 [2, T]) and `logits`",
        "  (f32 [2, T, V]) that transformers computes after loading *this folder* with",
        "  `from_pretrained(folder, dtype=torch.float32, attn_implementation=\"eager\")`:",
        "  the bf16 weights are upcast exactly to f32 and all compute is f32, so a loader",
        "  that converts bf16 to f32 and computes in f32 should match to about 1e-4. For the",
        "  quantized variants see below (and `logits_bf16` in deepseek_v3_fp8).",
        "- `VARIANT.md`: what the folder exercises (for the quantized ones also every tensor's",
        "  name, dtype and shape, and how the reference was obtained).",
        "",
        "Checks made when writing them: transformers loads every tensor (none missing,",
        "unexpected or mismatched); the logits equal those of the fixture's own",
        "transformers-5 form with its weights rounded to bf16 in memory (column",
        "\"vs same weights in memory\", must be <= 1e-5), which shows the old-style keys mean",
        "the same model; \"vs f32 fixture\" is the distance to the fixture's recorded f32",
        "logits, the effect of rounding (or quantizing) the weights.",
        "",
        "| variant | fixture | loaded as | weights | files | reference "
        "| vs same weights in memory | vs f32 fixture |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        files = len([f for f in r["files"] if f.endswith(".safetensors")])
        fmt = r.get("format")
        weights = {None: "bf16", "mxfp4": "MXFP4 experts, rest bf16",
                   "fp8": f"FP8 e4m3 block {r.get('weight_block_size')}, rest bf16"}[fmt]
        reference = {"transformers": "transformers",
                     "in-memory": "in memory (transformers refuses)"}[
                         r.get("reference", "transformers")]
        same = r["max_abs_vs_bf16_rounded_fixture"]
        same = f"{same:.1e}" if same is not None else "-"
        lines.append(f"| {r['variant']} | {r['fixture']} | {r['class']} | {weights} | "
                     f"{files} shard(s) | {reference} | {same} | "
                     f"{r['max_abs_vs_f32_fixture']:.1e} |")
    quantized = [r for r in rows if r.get("format")]
    if quantized:
        lines += ["", "Quantized variants: the tool writes its own quantization (MXFP4: per",
                  "32 weights the smallest power-of-two scale that puts the largest at <= 6,",
                  "each weight rounded to the nearest E2M1 value; FP8: per tile scale_inv =",
                  "amax / 448, `w / scale_inv` cast by torch to float8_e4m3fn) and loads the",
                  "folder with transformers, f32, asking its quantizer to dequantize on load",
                  "(`Mxfp4Config(dequantize=True)` / `FineGrainedFP8Config(dequantize=True)`,",
                  "what it does anyway on a CPU; needs the `accelerate` package). Those logits",
                  "must equal (<= 1e-5) the fixture's holding, in memory, the tool's own",
                  "dequantization of the codes (other tensors rounded to bf16 as stored): the",
                  "file layout is then the one transformers reads. A loader that dequantizes",
                  "to f32 and computes in f32 should match `logits` to about 1e-4.", ""]
        for r in quantized:
            if r["reference"] == "transformers":
                lines.append(f"- {r['variant']}: transformers loads the folder; its logits "
                             f"equal the in-memory dequantized fixture's to "
                             f"{r['max_abs_vs_bf16_rounded_fixture']:.1e}.")
            else:
                chk = r.get("transformers_check") or {}
                why = "; ".join(f"`{k}` {v}" for k, v in
                                r.get("transformers_fp8_readings", {}).items())
                lines.append(
                    f"- {r['variant']}: transformers {transformers.__version__} cannot load "
                    f"the folder (its FP8 dequantization takes the tile size as rows // "
                    f"scale_rows, cols // scale_cols, wrong for ragged tiles: {why}), so "
                    f"`logits` come from the in-memory dequantized fixture (f32). The same "
                    f"writer with block {chk.get('weight_block_size')}, which divides every "
                    f"matrix, loads in transformers and matches its in-memory model to "
                    f"{chk.get('max_abs_vs_dequantized_fixture', float('nan')):.1e}.")
            if r.get("ragged_tiles"):
                lines.append("  Ragged tiles: " + "; ".join(
                    f"`{k}` {v}" for k, v in r["ragged_tiles"].items()) + ".")
            if "logits_bf16" in VARIANTS[r["variant"]]["what"]:
                lines.append(
                    f"  `logits_bf16`: the dequantized FP8 weights rounded to bf16 (a loader "
                    f"that dequantizes FP8 to bf16), f32 compute; "
                    f"{r['max_abs_logits_bf16_vs_logits']:.2g} from `logits` (mostly "
                    f"O(0.1), more where the rounding flips an expert choice), "
                    f"{r['max_abs_logits_bf16_vs_f32_fixture']:.2g} from the f32 fixture.")
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
