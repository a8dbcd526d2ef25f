//! The machine a measurement ran on (CPU model, cores, SIMD level, OS), for the figures a run reports: float
//! results of the CPU backend depend on the SIMD width its kernels pick at run time and on cache-sized blocking.

use serde::Serialize;

/// What a run's figures depend on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`'s model name).
    pub cpu: String,
    /// Logical cores available to this process.
    pub cores: usize,
    /// Widest SIMD level the CPU offers to the kernels (`avx512f`, `avx2+fma`, `sse2`, `neon`, ...).
    pub simd: String,
    /// Operating system and architecture.
    pub os: String,
}

impl Machine {
    /// This machine.
    pub fn here() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Machine {
            cpu,
            cores,
            simd: simd_level().into(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {} cores, {}, {}", self.cpu, self.cores, self.simd, self.os)
    }
}

#[cfg(target_arch = "x86_64")]
fn simd_level() -> &'static str {
    if std::arch::is_x86_feature_detected!("avx512f") {
        "avx512f"
    } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        "avx2+fma"
    } else if std::arch::is_x86_feature_detected!("avx2") {
        "avx2"
    } else {
        "sse2"
    }
}

#[cfg(target_arch = "aarch64")]
fn simd_level() -> &'static str {
    "neon"
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd_level() -> &'static str {
    "scalar"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_is_described() {
        let m = Machine::here();
        assert!(m.cores >= 1 && !m.cpu.is_empty() && !m.simd.is_empty());
        assert!(m.to_string().contains(&m.simd));
    }
}
