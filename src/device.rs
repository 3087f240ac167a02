//! `--device auto|cpu|cuda`: where candle computes. A build without the `cuda` feature has the
//! CPU only.

use candle_core::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceChoice {
    /// CUDA when this build has it and a GPU answers, else the CPU (with a notice when the
    /// build has CUDA).
    #[default]
    Auto,
    Cpu,
    /// GPU 0; an error when none answers or the build has no CUDA.
    Cuda,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("--device cuda: this build has no CUDA support; build with `cargo build --release --features cuda` (see README)")]
    NotBuilt,
    #[error("--device cuda: no CUDA GPU answered ({0})")]
    NoGpu(String),
}

/// The device for `choice`, and a one-line notice when `auto` fell back to the CPU although
/// the build has CUDA.
pub fn select(choice: DeviceChoice) -> Result<(Device, Option<String>), DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, None)),
        DeviceChoice::Auto | DeviceChoice::Cuda => match cuda_device() {
            Ok(device) => Ok((device, None)),
            Err(DeviceError::NotBuilt) if choice == DeviceChoice::Auto => Ok((Device::Cpu, None)),
            Err(DeviceError::NoGpu(why)) if choice == DeviceChoice::Auto => Ok((
                Device::Cpu,
                Some(format!("no CUDA GPU answered ({why}): running on the CPU")),
            )),
            Err(e) => Err(e),
        },
    }
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<Device, DeviceError> {
    // `Device::cuda_if_available` returns an error rather than the CPU when no GPU answers in
    // a CUDA build; the driver's own message says why (no driver, no device, the stub library).
    Device::new_cuda(0).map_err(|e| DeviceError::NoGpu(first_line(&e.to_string())))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt)
}

#[cfg(feature = "cuda")]
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

/// The device's name for the report.
pub fn name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        _ => "other",
    }
}

/// A GPU for the CUDA cross-check tests (their names start with `cuda_`), or None with the
/// reason printed: they skip where no GPU answers.
#[cfg(all(test, feature = "cuda"))]
pub(crate) fn test_gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            eprintln!(
                "skipped: no CUDA GPU answered ({})",
                first_line(&e.to_string())
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_there() {
        let (device, notice) = select(DeviceChoice::Cpu).unwrap();
        assert!(device.is_cpu());
        assert!(notice.is_none());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_the_feature_auto_is_the_cpu_and_cuda_is_an_error() {
        let (device, notice) = select(DeviceChoice::Auto).unwrap();
        assert!(device.is_cpu());
        assert!(notice.is_none());
        let err = select(DeviceChoice::Cuda).unwrap_err();
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }
}
