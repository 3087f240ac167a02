#!/usr/bin/env bash
# Installs what `cargo build --features cuda` needs on a machine with no CUDA toolkit and no
# GPU: nvcc 13.0 and the CUDA libraries from NVIDIA's PyPI wheels (about 1.2 GB, once), the
# unversioned library names the linker asks for, and a link-time stub of libcuda.so (no wheel
# ships the driver library; the real one is loaded at run time on a GPU machine).
#
# Usage:  source <(bash kernels/install-toolkit.sh)
#   prints the `export` lines for PATH, CUDA_HOME, CUDA_COMPUTE_CAP, LIBRARY_PATH and
#   LD_LIBRARY_PATH; progress goes to stderr. POISONGATE_CUDA sets the folder (default
#   ~/.cache/poisongate-cuda). Never put the stub folder on a GPU machine's library path.
set -euo pipefail
prefix=${POISONGATE_CUDA:-$HOME/.cache/poisongate-cuda}
root=$prefix/nvidia/cu13
stamp=$prefix/.complete-13.0.88
if [ ! -f "$stamp" ]; then
  echo "installing the CUDA 13.0 compiler and libraries into $prefix" >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$prefix" \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
    nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 >&2
  for lib in cublas cublasLt cudart nvrtc; do
    ln -sf "lib$lib.so.13" "$root/lib/lib$lib.so"
  done
  ln -sf libcurand.so.10 "$root/lib/libcurand.so"
  # The stub: every cu* name cuda.h mentions returns CUDA_ERROR_STUB_LIBRARY (34). That
  # covers the versioned names the header maps the plain ones onto (`cuMemAlloc_v2`, and the
  # ones behind `__CUDA_API_PTSZ(...)`); a name that is not a function costs nothing.
  mkdir -p "$root/lib/stubs"
  grep -oE '\bcu[A-Z][A-Za-z0-9_]*' "$root/include/cuda.h" | sort -u \
    | awk '{ printf "int %s(void) { return 34; }\n", $1 }' >"$root/lib/stubs/libcuda.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$root/lib/stubs/libcuda.so" \
    "$root/lib/stubs/libcuda.c"
  ln -sf libcuda.so "$root/lib/stubs/libcuda.so.1"
  "$root/bin/nvcc" --version >&2
  touch "$stamp"
fi
cat <<EOF
export CUDA_HOME=$root
export PATH=$root/bin:\$PATH
export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-90}
export LIBRARY_PATH=$root/lib:$root/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}
export LD_LIBRARY_PATH=$root/lib:$root/lib/stubs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
EOF
