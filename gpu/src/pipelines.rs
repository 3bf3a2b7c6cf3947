//! The pipeline cache: each kernel (a family's WGSL with its op and types, plus override
//! constants) is compiled once per process and kept by name. Bind group layouts are explicit:
//! binding 0 is the kernel's uniform parameters, then its storage buffers in order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tensor::Result;

use crate::context::Context;

/// How a kernel uses one of its storage buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

pub struct Kernel {
    pub name: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub struct Pipelines {
    cache: Mutex<HashMap<String, Arc<Kernel>>>,
    /// Kernels compiled so far (tests check each is compiled once).
    pub compiled: AtomicU64,
}

impl Pipelines {
    /// The keys of the kernels compiled so far (tests check which variant of a family ran).
    pub fn keys(&self) -> Vec<String> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// The kernel called `key`, compiling `source()` the first time. `buffers` lists the access
    /// of bindings 1.., in order.
    pub fn get(
        &self,
        ctx: &Context,
        key: &str,
        buffers: &[Access],
        source: impl FnOnce() -> String,
    ) -> Result<Arc<Kernel>> {
        if let Some(k) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(k.clone());
        }
        let device = &ctx.device;
        let kernel = crate::errors::scoped(ctx, &format!("compiling kernel {key}"), || {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(key),
                source: wgpu::ShaderSource::Wgsl(source().into()),
            });
            let mut entries = vec![wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
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
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(key), entries: &entries });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(key),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(key),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            });
            Arc::new(Kernel { name: key.to_string(), pipeline, layout })
        })?;
        self.compiled.fetch_add(1, Ordering::Relaxed);
        crate::counters::add(&crate::counters::PIPELINE_COMPILATIONS, 1);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key.to_string(), kernel.clone());
        Ok(kernel)
    }
}
