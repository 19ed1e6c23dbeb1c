//! Label quality (the seed's label-error audit; docs/loop.md): agreement between
//! annotators, and confident learning to rank suspected label errors. Its power to find
//! planted errors is measured by `power`.

pub mod agreement;
pub mod confident;
pub mod finder;
pub mod neighbours;
pub mod power;
pub mod summary;
