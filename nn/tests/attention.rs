//! Attention blocks: caches against full recomputation, MLA's absorbed path against its plain
//! path, the window and chunk semantics, cache sizes, and gradient checks.

use autograd::Var;
use autograd::gradcheck::{GradCheck, check_params};
use nn::attention::{GroupedQueryAttention, KvCache, MaskKind, MultiHeadLatentAttention, QkNorm, TemperatureTuning};
use nn::{Init, Module, ModuleExt};
use tensor::testing::{assert_close, randn};
use tensor::{DType, Device, Result};

mod common;
use common::{gqa_config, mla_config};

/// Runs the sequence in pieces through a cache and concatenates the outputs.
fn in_steps(
    f: &dyn Fn(&Var, usize, &mut KvCache) -> Result<Var>,
    x: &Var,
    pieces: &[usize],
    kind: MaskKind,
) -> Result<Var> {
    let mut cache = KvCache::new(kind);
    let mut outs = Vec::new();
    let mut start = 0;
    for &n in pieces {
        outs.push(f(&x.narrow(1, start, n)?, start, &mut cache)?);
        start += n;
    }
    Var::cat(&outs.iter().collect::<Vec<_>>(), 1)
}

#[test]
fn cached_decoding_equals_full_forward_for_every_mask_and_norm() -> Result<()> {
    let cpu = Device::cpu();
    let x = Var::constant(randn([2, 11, 16], 1, &cpu)?);
    let tuning = TemperatureTuning { attn_scale: 0.1, floor_scale: 4.0 };
    let configs = [
        gqa_config(MaskKind::Causal, QkNorm::None, true, None),
        gqa_config(MaskKind::Sliding { window: 3 }, QkNorm::PerHead { eps: 1e-6, gemma: true }, true, None),
        gqa_config(MaskKind::Chunked { chunk: 4 }, QkNorm::L2AfterRope { eps: 1e-6 }, true, None),
        gqa_config(MaskKind::Causal, QkNorm::WholeProjection { eps: 1e-6 }, true, None),
        gqa_config(MaskKind::Causal, QkNorm::None, false, Some(tuning)), // NoPE + temperature tuning
    ];
    for (i, config) in configs.into_iter().enumerate() {
        let kind = config.mask;
        let attn = GroupedQueryAttention::new(config, &mut Init::new(i as u64, &cpu))?;
        let full = attn.forward(&x, 0, None)?;
        // Prefill of 5, then single-token steps, then a chunk of 3: crossing windows and chunks.
        let stepped = in_steps(&|x, s, c| attn.forward(x, s, Some(c)), &x, &[5, 1, 1, 1, 3], kind)?;
        assert_close(&stepped.value(), &full.value(), 1e-5, 1e-5)
            .map_err(|e| tensor::Error::shape("case", format!("{i}: {e}")))?;
    }
    Ok(())
}

#[test]
fn mla_absorbed_decode_equals_plain_path() -> Result<()> {
    let cpu = Device::cpu();
    let mla = MultiHeadLatentAttention::new(mla_config(), &mut Init::new(7, &cpu))?;
    let x = Var::constant(randn([2, 9, 16], 2, &cpu)?);
    let plain = mla.forward_plain(&x, 0)?;
    let absorbed = in_steps(&|x, s, c| mla.forward(x, s, Some(c)), &x, &[4, 1, 1, 3], MaskKind::Causal)?;
    assert_close(&absorbed.value(), &plain.value(), 1e-5, 1e-5)
}

#[test]
fn mla_cache_holds_latent_plus_rope_key_per_token() -> Result<()> {
    let cpu = Device::cpu();
    let c = mla_config();
    let mla = MultiHeadLatentAttention::new(c.clone(), &mut Init::new(8, &cpu))?;
    let mut cache = KvCache::new(MaskKind::Causal);
    mla.forward(&Var::constant(randn([1, 7, 16], 3, &cpu)?), 0, Some(&mut cache))?;
    assert_eq!(cache.size_in_bytes(), 7 * (c.kv_lora_rank + c.qk_rope_head_dim) * 4);
    assert_eq!(mla.kv_bytes_per_token(2), (10 + 4) * 2);
    Ok(())
}

#[test]
fn sliding_window_cache_stops_growing_and_gemma_pattern_holds_a_sixth() -> Result<()> {
    let cpu = Device::cpu();
    let window = 8;
    let sliding = GroupedQueryAttention::new(
        gqa_config(MaskKind::Sliding { window }, QkNorm::None, true, None),
        &mut Init::new(9, &cpu),
    )?;
    let global =
        GroupedQueryAttention::new(gqa_config(MaskKind::Causal, QkNorm::None, true, None), &mut Init::new(10, &cpu))?;
    let (mut local_cache, mut global_cache) =
        (KvCache::new(MaskKind::Sliding { window }), KvCache::new(MaskKind::Causal));
    let steps = 96;
    for p in 0..steps {
        let x = Var::constant(randn([1, 1, 16], 100 + p as u64, &cpu)?);
        sliding.forward(&x, p, Some(&mut local_cache))?;
        global.forward(&x, p, Some(&mut global_cache))?;
        assert!(local_cache.len() <= window, "sliding cache holds {} rows at step {p}", local_cache.len());
    }
    assert_eq!(global_cache.len(), steps);
    // Gemma 3's pattern: 5 sliding layers and 1 global layer against 6 global layers.
    let mixed = 5 * local_cache.size_in_bytes() + global_cache.size_in_bytes();
    let full = 6 * global_cache.size_in_bytes();
    let ratio = mixed as f64 / full as f64;
    let expected = (5.0 * window as f64 + steps as f64) / (6.0 * steps as f64);
    assert!((ratio - expected).abs() < 0.01, "ratio {ratio}, expected {expected}");
    Ok(())
}

#[test]
fn window_sees_exactly_its_last_positions_and_chunks_never_cross() {
    let w = 4;
    let grid = MaskKind::Sliding { window: w }.grid(12);
    for (q, row) in grid.iter().enumerate() {
        let visible: Vec<usize> = (0..12).filter(|&k| row[k]).collect();
        let want: Vec<usize> = (q.saturating_sub(w - 1)..=q).collect();
        assert_eq!(visible, want, "query {q}");
    }
    let c = 4;
    let grid = MaskKind::Chunked { chunk: c }.grid(12);
    for (q, row) in grid.iter().enumerate() {
        for (k, &seen) in row.iter().enumerate() {
            assert_eq!(seen, k <= q && k / c == q / c, "query {q} key {k}");
        }
    }
}

#[test]
fn temperature_tuning_matches_llama4_formula() {
    let t = TemperatureTuning { attn_scale: 0.1, floor_scale: 8192.0 };
    assert_eq!(t.factor(0), 1.0);
    assert_eq!(t.factor(8190), 1.0);
    assert!((t.factor(8191) - (1.0 + 0.1 * 2f64.ln())).abs() < 1e-12); // floor(8192 / 8192) = 1
}

#[test]
fn parameter_names_match_hugging_face() -> Result<()> {
    let cpu = Device::cpu();
    let attn = GroupedQueryAttention::new(
        gqa_config(MaskKind::Causal, QkNorm::PerHead { eps: 1e-6, gemma: false }, true, None),
        &mut Init::new(1, &cpu),
    )?;
    let names: Vec<String> = attn.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight", "q_norm.weight", "k_norm.weight"]
    );
    let mla = MultiHeadLatentAttention::new(mla_config(), &mut Init::new(1, &cpu))?;
    let mut names = Vec::new();
    mla.visit("model.layers.0.self_attn", &mut |n, _| names.push(n.to_string()));
    assert_eq!(names[0], "model.layers.0.self_attn.q_a_proj.weight");
    assert!(names.contains(&"model.layers.0.self_attn.kv_a_proj_with_mqa.weight".to_string()));
    Ok(())
}

#[test]
fn gradients_of_attention_blocks() -> Result<()> {
    let cpu = Device::cpu();
    let x = Var::constant(randn([1, 5, 16], 20, &cpu)?.to_dtype(DType::F64)?);
    let mut init = Init::new(21, &cpu);
    init.dtype = DType::F64;
    init.std = 0.3;
    let cases = [
        (MaskKind::Causal, QkNorm::PerHead { eps: 1e-6, gemma: false }),
        (MaskKind::Sliding { window: 2 }, QkNorm::WholeProjection { eps: 1e-6 }),
        (MaskKind::Chunked { chunk: 3 }, QkNorm::L2AfterRope { eps: 1e-6 }),
    ];
    for (mask, norm) in cases {
        let attn = GroupedQueryAttention::new(gqa_config(mask, norm, true, None), &mut init)?;
        check_params(&attn.parameters(), || attn.forward(&x, 0, None), GradCheck::default())?;
    }
    let mla = MultiHeadLatentAttention::new(mla_config(), &mut init)?;
    check_params(&mla.parameters(), || mla.forward_plain(&x, 0), GradCheck::default())?;
    Ok(())
}

#[test]
fn cache_capacity_comes_in_large_steps_and_a_window_moves_without_growing() -> Result<()> {
    // One row of K and V: [1, 1, 1, 4] f32, 16 bytes each.
    let cpu = Device::cpu();
    let row = |i: usize| randn([1, 1, 1, 4], i as u64, &cpu);
    let row_bytes = 2 * 16;

    // Reserved for 300 positions: allocated once at the first append, never grown up to 300.
    let mut reserved = KvCache::new(MaskKind::Causal);
    reserved.reserve(300);
    for i in 0..300 {
        let r = row(i)?;
        reserved.append(&[&r, &r])?;
        assert_eq!(reserved.capacity_in_bytes(), 300 * row_bytes, "after {} rows", i + 1);
    }

    // A prompt of 200 rows at once into a reservation of 300: still exactly the reservation
    // (not twice the prompt), so prefill allocates the generation's cache once.
    let mut prompt = KvCache::new(MaskKind::Causal);
    prompt.reserve(300);
    let rows = randn([1, 1, 200, 4], 7, &cpu)?;
    prompt.append(&[&rows, &rows])?;
    assert_eq!(prompt.capacity_in_bytes(), 300 * row_bytes);

    // Without a reservation: 256 rows at first, then twice what is needed.
    let mut growing = KvCache::new(MaskKind::Causal);
    let r = row(0)?;
    growing.append(&[&r, &r])?;
    assert_eq!(growing.capacity_in_bytes(), 256 * row_bytes);

    // A window of 8: two buffers of 16 rows, whatever the length of the sequence; the rows it
    // keeps are the last ones written.
    let mut window = KvCache::new(MaskKind::Sliding { window: 8 });
    let mut last = Vec::new();
    for i in 0..100 {
        let r = row(1000 + i)?;
        let rows = window.append(&[&r, &r])?;
        assert_eq!(window.capacity_in_bytes(), 2 * 16 * row_bytes, "step {i}");
        last.push(r);
        let want = tensor::Tensor::cat(&last[last.len().saturating_sub(8)..].iter().collect::<Vec<_>>(), 2usize)?;
        assert_close(&rows.tensors[0], &want, 0.0, 0.0)?;
    }
    Ok(())
}
