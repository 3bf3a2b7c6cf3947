//! The pipeline cache: each kernel is compiled once per process and kept under its
//! [`KernelKey`], a typed value (the family's own struct: its op, element types, load widths)
//! from which the kernel's name, its bindings and its WGSL source are all rendered, so a key
//! can never name a different shader from the one compiled under it. Bind group layouts are
//! explicit: binding 0 is the kernel's uniform parameters, then its storage buffers in order.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tensor::{Error, Result};

use crate::context::Context;

/// How a kernel uses one of its storage buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// What identifies one compiled kernel. Each kernel family defines its key beside its launcher
/// (`kernels/<family>.rs`); every field that changes the WGSL is a field of the key, and
/// [`KernelKey::source`] is the only place that source is written out.
pub trait KernelKey: Hash + Eq + Clone + Debug + Send + 'static {
    /// The kernel's label in errors, profiles and [`Pipelines::names`]: the family, then the
    /// fields that tell its variants apart, `/`-separated (`matvec/bf16/true/vec4/tree`).
    fn name(&self) -> String;
    /// The access of storage bindings 1.., in order.
    fn buffers(&self) -> &'static [Access];
    /// The kernel's WGSL. Called once, on first use; a key describes only kernels that exist
    /// (launchers check dtypes before building one), so this cannot fail.
    fn source(&self) -> String;
}

pub struct Kernel {
    pub name: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// One map per key type: a `HashMap<K, Arc<Kernel>>` behind `dyn Any`, found by `K`'s `TypeId`.
#[derive(Default)]
struct Cache {
    by_type: HashMap<TypeId, Box<dyn Any + Send>>,
    names: Vec<String>,
}

impl Cache {
    fn map<K: KernelKey>(&mut self) -> &mut HashMap<K, Arc<Kernel>> {
        self.by_type
            .entry(TypeId::of::<K>())
            .or_insert_with(|| Box::new(HashMap::<K, Arc<Kernel>>::new()))
            .downcast_mut()
            .expect("each TypeId holds the map of that type")
    }
}

#[derive(Default)]
pub struct Pipelines {
    cache: Mutex<Cache>,
    /// Kernels compiled so far (tests check each is compiled once).
    pub compiled: AtomicU64,
}

impl Pipelines {
    /// The names of the kernels compiled so far (tests check which variant of a family ran).
    pub fn names(&self) -> Vec<String> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).names.clone()
    }

    /// The kernel `key` describes, compiled from `key.source()` the first time.
    pub fn get<K: KernelKey>(&self, ctx: &Context, key: &K) -> Result<Arc<Kernel>> {
        if let Some(k) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).map::<K>().get(key) {
            return Ok(k.clone());
        }
        let name = key.name();
        let (name, buffers) = (name.as_str(), key.buffers());
        // Adapters are accepted for `requirements::NEEDS`: a kernel binding more storage buffers
        // would fail only on adapters that offer just that many, so it fails here, on every
        // adapter (the tests compile the kernels). This counts a kernel composed from several
        // WGSL files whole, where the requirements' own test reads each file alone.
        let needs = crate::requirements::NEEDS.storage_buffers_per_stage as usize;
        if buffers.len() > needs {
            return Err(Error::backend(
                name,
                format!(
                    "binds {} storage buffers, more than the {needs} the adapter requirements ask for",
                    buffers.len()
                ),
            ));
        }
        let device = &ctx.device;
        let kernel = crate::errors::scoped(ctx, &format!("compiling kernel {name}"), || {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(key.source().into()),
            });
            let mut entries = vec![wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    // Each dispatch's parameters sit at their own offset of one arena buffer:
                    // dynamic, so one bind group serves the dispatch wherever they land.
                    has_dynamic_offset: true,
                    min_binding_size: None,
                },
                count: None,
            }];
            for (i, access) in buffers.iter().enumerate() {
                entries.push(wgpu::BindGroupLayoutEntry {
                    binding: i as u32 + 1,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Storage { read_only: *access == Access::Read },
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                });
            }
            let layout = device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(name), entries: &entries });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            });
            Arc::new(Kernel { name: name.to_string(), pipeline, layout })
        })?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        crate::counters::add(&crate::counters::PIPELINE_COMPILATIONS, 1);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.map::<K>().insert(key.clone(), kernel.clone()).is_none() {
            cache.names.push(name.to_string());
        }
        Ok(kernel)
    }
}
