//! With the `cuda` feature, compiles every `kernels/*.cu` to PTX in OUT_DIR with nvcc, for
//! `src/cuda.rs` to embed. Without it, does nothing. `kernels/install-toolkit.sh` installs
//! nvcc on a machine that has none.
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo::rerun-if-env-changed=CUDA_HOME");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // PTX for this virtual architecture is compiled by the driver for the GPU it meets (the
    // same or newer); 80 (A100) runs on H100/H200 too.
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "80".into());
    let cap: String = cap.chars().filter(char::is_ascii_digit).collect();
    let nvcc = std::env::var_os("CUDA_HOME")
        .map(|h| Path::new(&h).join("bin/nvcc"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "nvcc".into());
    let mut sources: Vec<PathBuf> = std::fs::read_dir("kernels")
        .expect("the kernels folder")
        .map(|e| e.expect("a readable kernels folder").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    sources.sort();
    for source in sources {
        let ptx = out.join(source.with_extension("ptx").file_name().unwrap());
        let status = Command::new(&nvcc)
            .args(["--ptx", "-O3", "-std=c++17", "-Ikernels"])
            .arg(format!("--gpu-architecture=compute_{cap}"))
            .arg("-o")
            .arg(&ptx)
            .arg(&source)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}); install it with `source <(bash kernels/install-toolkit.sh)`",
                    nvcc.display()
                )
            });
        assert!(status.success(), "nvcc failed on {}", source.display());
    }
}
