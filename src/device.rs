//! `--device cpu|cuda[:N]`: where a command computes. CPU is Burn's pure-Rust backend with
//! cnnzoo's kernels; CUDA is Burn's CUDA backend, in builds with the `cuda` feature (it builds
//! without a CUDA toolkit; the driver and NVRTC are needed at run time).

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;

use crate::error::{Error, Result};

/// A device as `--device` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU (default).
    #[default]
    Cpu,
    /// CUDA GPU number N (`cuda` is `cuda:0`).
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "--device",
                format!("`{s}` is not a device; give `cpu`, `cuda` or `cuda:N` (N = 0, 1, …)"),
            )
        };
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => match other.strip_prefix("cuda:") {
                Some(n) => n.parse::<usize>().map(DeviceSpec::Cuda).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Whether this build has Burn's CUDA backend (the `cuda` cargo feature).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

impl DeviceSpec {
    /// The device, checked: CUDA in a build without the `cuda` feature, or on a machine where
    /// the GPU cannot be used (no driver, no such GPU), is an error saying so — never a panic.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::flex()),
            DeviceSpec::Cuda(n) => open_cuda(n),
        }
    }
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(n: usize) -> Result<Device> {
    Err(Error::invalid(
        "--device",
        format!(
            "`cuda:{n}` needs a build with CUDA: `cargo build --release --features cuda` (no CUDA \
             toolkit is needed to build; the NVIDIA driver and NVRTC are needed to run)"
        ),
    ))
}

#[cfg(feature = "cuda")]
fn open_cuda(n: usize) -> Result<Device> {
    use burn::tensor::Tensor;
    // Burn's CUDA backend panics when it cannot start (no driver, no such GPU): try a tiny
    // computation with the panic message captured instead of printed.
    let message = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let seen = message.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut m) = seen.lock() {
            *m = info.to_string();
        }
    }));
    let probe = std::panic::catch_unwind(|| {
        let device = Device::cuda(n);
        let sum = Tensor::<1>::ones([4], &device).sum().into_scalar::<f32>();
        (device, sum)
    });
    std::panic::set_hook(previous);
    match probe {
        Ok((device, sum)) if sum == 4.0 => Ok(device),
        Ok((_, sum)) => Err(Error::invalid("--device", format!("cuda:{n} computed 1+1+1+1 = {sum}"))),
        Err(_) => {
            let why = message.lock().map(|m| m.clone()).unwrap_or_default();
            Err(Error::invalid(
                "--device",
                format!(
                    "cannot use cuda:{n} (is there an NVIDIA GPU with its driver on this machine?): {why}"
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_and_print() {
        assert_eq!("cpu".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("CUDA".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        assert_eq!(DeviceSpec::Cuda(3).to_string(), "cuda:3");
        for bad in ["tpu", "cuda:", "cuda:x", "cuda:-1", ""] {
            let e = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(e.contains("--device") && e.contains("cuda:N"), "{bad}: {e}");
        }
        assert!(DeviceSpec::Cpu.open().is_ok());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_rebuild() {
        let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
