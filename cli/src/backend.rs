//! The backend the binary runs on, chosen once by Cargo feature (cuda > tch > flex).

#[cfg(feature = "cuda")]
/// Backend of this build.
pub type Backend = burn::backend::Cuda;

#[cfg(all(feature = "tch", not(feature = "cuda")))]
/// Backend of this build.
pub type Backend = burn::backend::LibTorch;

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "tch"))))]
/// Backend of this build.
pub type Backend = burn::backend::Flex;

#[cfg(not(any(feature = "flex", feature = "cuda", feature = "tch")))]
compile_error!("enable one backend feature: flex (default), cuda or tch");

/// The default device of the backend.
pub fn device() -> burn::tensor::Device<Backend> {
    Default::default()
}
