#!/usr/bin/env bash
# One command for the GPU numbers: matmul GFLOP/s (f32, bf16 and f16 weights), the Qwen3-0.6B
# shape's prefill and decode tokens/s (f32, bf16, and q8_0/q4_0 GGUF) next to PyTorch on the same GPU, and
# the fraction of the memory bandwidth decode reaches. Under 5 minutes on a GPU once built.
#
#   tools/gpu-bench.sh [--smoke] [--write-docs] [--no-build] [--bin-dir DIR] [other tools/gpu_bench.py flags]
#
#   --smoke       tiny shapes; runs on a CPU adapter (Mesa's lavapipe) to test the plumbing
#   --write-docs  put the table in docs/BENCHMARKS.md, in a section named after the adapter
#   --no-build    use the binaries in --bin-dir (default target/release) as they are: for a GPU
#                 machine without a Rust toolchain, build here and carry `llm` and `gpu_bench`
#
# Environment: PYTHON (default python3, or /work/venv/bin/python where it exists), CARGO_PROFILE
# (default release), and wgpu's LLM_GPU_BACKEND / LLM_GPU_ADAPTER to pick an adapter.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0 build=1 bin_dir="" pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) smoke=1; pass+=("$1") ;;
        --no-build) build=0 ;;
        --bin-dir) bin_dir="$2"; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) pass+=("$1") ;;
    esac
    shift
done
profile="${CARGO_PROFILE:-release}"
case "$profile" in dev|test) out=debug ;; bench) out=release ;; *) out="$profile" ;; esac
bin_dir="${bin_dir:-target/$out}"
if [ -z "${PYTHON:-}" ]; then
    if [ -x /work/venv/bin/python ]; then PYTHON=/work/venv/bin/python; else PYTHON=python3; fi
fi

die() { echo "gpu-bench: $*" >&2; exit 2; }

# 1. A Vulkan loader and a GPU driver. wgpu also takes Metal (macOS) and DX12 (Windows); this
#    check is for Linux, where Vulkan is the way to a GPU.
if [ "$(uname -s)" = Linux ]; then
    if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
        die "no Vulkan loader (libvulkan.so.1). Install it: apt-get install libvulkan1 (Debian/Ubuntu),
  or unpack its .deb where apt cannot reach the network: apt-get download libvulkan1; dpkg -x libvulkan1_*.deb /; ldconfig.
  Then the GPU's Vulkan driver: NVIDIA's ships with the driver (nvidia_icd.json; if it is not found, export
  VK_DRIVER_FILES=/usr/share/vulkan/icd.d/nvidia_icd.json or wherever the driver put it), AMD/Intel: mesa-vulkan-drivers."
    fi
    if command -v vulkaninfo >/dev/null 2>&1; then
        gpus=$(vulkaninfo --summary 2>/dev/null | grep -E 'deviceName|deviceType' || true)
        echo "gpu-bench: vulkaninfo --summary:" >&2
        echo "$gpus" | sed 's/^/    /' >&2
        if [ "$smoke" = 0 ] && ! echo "$gpus" | grep -qE 'PHYSICAL_DEVICE_TYPE_(DISCRETE|INTEGRATED|VIRTUAL)_GPU'; then
            die "Vulkan sees no GPU (only a CPU adapter such as lavapipe, or none). Install the GPU's Vulkan driver
  (NVIDIA: the driver's nvidia_icd.json, pointed at with VK_DRIVER_FILES if it is not in /usr/share/vulkan/icd.d;
  AMD/Intel: mesa-vulkan-drivers), or run with --smoke to test the plumbing on the CPU adapter."
        fi
    else
        echo "gpu-bench: vulkaninfo not installed (apt-get install vulkan-tools); asking wgpu directly" >&2
    fi
fi

# 2. The binaries.
if [ "$build" = 1 ]; then
    command -v cargo >/dev/null 2>&1 || die "no cargo here: build elsewhere (cargo build --release -p llm -p gpu --bin llm --example gpu_bench), carry target/release/{llm,examples/gpu_bench} and pass --no-build --bin-dir DIR"
    cargo build --profile "$profile" -p llm -p gpu --bin llm --example gpu_bench >&2
    mkdir -p "$bin_dir/gpu-bench"
    cp "$bin_dir/llm" "$bin_dir/examples/gpu_bench" "$bin_dir/gpu-bench/"
    bin_dir="$bin_dir/gpu-bench"
fi
[ -x "$bin_dir/llm" ] && [ -x "$bin_dir/gpu_bench" ] || die "$bin_dir must hold the built llm and gpu_bench"

# 3. The runs; gpu_bench exits 2 (no adapter) or 3 (only a CPU adapter) with its reason.
"$PYTHON" -c 'import transformers, safetensors' 2>/dev/null ||
    die "$PYTHON lacks transformers/safetensors (pip install -r tools/requirements.txt, or set PYTHON)"
exec "$PYTHON" tools/gpu_bench.py --bin-dir "$bin_dir" ${pass[@]+"${pass[@]}"}
