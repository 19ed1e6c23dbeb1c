//! Label quality (DESIGN.md §1, the seed's label-error audit): agreement between
//! annotators, and confident learning to rank suspected label errors. The audit pages
//! and the k-fold job that feeds the error finder come next.

pub mod agreement;
pub mod confident;
pub mod finder;
