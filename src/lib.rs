//! reviewloop: Korean review analysis with an active-learning loop.
//! docs/architecture.md has the map and the order of the layers: a module uses only
//! the modules below it there (tests/api/layers.rs checks).

pub mod analyze;
pub mod audit;
pub mod bases;
pub mod bench;
pub mod cancel;
pub mod config;
pub mod consensus;
pub mod csv_cells;
pub mod cycles;
pub mod error;
pub mod evidence;
pub mod export;
pub mod import;
pub mod jobs;
pub mod labels;
pub mod model;
pub mod names;
pub mod promotion;
pub mod retention;
pub mod rounds;
pub mod score;
pub mod select;
pub mod serve;
pub mod simulate;
pub mod split;
pub mod stats;
pub mod storage;
pub mod store;
pub mod taxonomy;
pub mod text;
pub mod train;
pub mod web;
