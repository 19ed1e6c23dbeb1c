//! Label quality (DESIGN.md §1, the seed's label-error audit): agreement between
//! annotators, and confident learning to rank suspected label errors. Its power to find
//! planted errors is measured by `power`.

pub mod agreement;
pub mod confident;
pub mod finder;
pub mod power;
