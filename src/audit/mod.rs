//! Label quality: agreement between annotators (and, with issue 5, per-keyword audits and
//! the label-error finder).

pub mod agreement;
