//! Handlers of the larger commands, one file per area; `main.rs` parses and dispatches.

pub mod active;
pub mod api_keys;
pub mod audit;
pub mod models;
pub mod simulate;
