//! The backend a build runs on, chosen once by Cargo feature: `cuda` over `tch` over `flex`.

#[cfg(feature = "cuda")]
/// Backend of this build.
pub type DefaultBackend = burn::backend::Cuda;

#[cfg(all(feature = "tch", not(feature = "cuda")))]
/// Backend of this build.
pub type DefaultBackend = burn::backend::LibTorch;

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "tch"))))]
/// Backend of this build.
pub type DefaultBackend = burn::backend::Flex;

#[cfg(not(any(feature = "flex", feature = "cuda", feature = "tch")))]
compile_error!("enable one backend feature of repic-models: flex (default), cuda or tch");

/// The default device of [`DefaultBackend`].
pub fn default_device() -> burn::tensor::Device<DefaultBackend> {
    Default::default()
}

/// The name of [`DefaultBackend`]: `cuda`, `tch` or `flex`.
pub const BACKEND_NAME: &str = if cfg!(feature = "cuda") {
    "cuda"
} else if cfg!(feature = "tch") {
    "tch"
} else {
    "flex"
};
