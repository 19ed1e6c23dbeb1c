//! Models in candle: the BERT-family encoder, its checkpoint folders, classifier heads,
//! and seeded randomness for reproducible training.

pub mod affine;
pub mod attention;
pub mod classifier;
pub mod dense;
pub mod dropout;
pub mod encoder;
pub mod features;
pub mod folder;
pub mod fused;
pub mod gelu;
pub mod inputs;
pub mod int8;
pub mod lexical;
pub mod memory;
pub mod outputs;
mod product;
pub mod quantize;
pub mod random;
#[cfg(test)]
pub mod testing;
pub mod tokenizer_files;
pub mod version;
pub mod vocab;

use candle_core::Device;

/// The device for models: CPU, or the first GPU when built with `--features cuda`
/// and one is present. Picked in one place so every model agrees.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(gpu) = Device::new_cuda(0) {
        return gpu;
    }
    Device::Cpu
}

/// The device models run on, in words: `cuda:0` or `cpu (N threads)`.
pub fn device_name() -> String {
    match device() {
        Device::Cuda(_) => "cuda:0".into(),
        _ => format!("cpu ({} threads)", std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}
