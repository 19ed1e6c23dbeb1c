//! reviewloop: Korean review analysis with an active-learning loop.
//! See DESIGN.md for the map; each module below is one stage of the loop.

pub mod analyze;
pub mod audit;
pub mod bases;
pub mod bench;
pub mod cancel;
pub mod config;
pub mod consensus;
pub mod csv_cells;
pub mod error;
pub mod export;
pub mod import;
pub mod jobs;
pub mod labels;
pub mod model;
pub mod names;
pub mod rounds;
pub mod score;
pub mod select;
pub mod serve;
pub mod simulate;
pub mod store;
pub mod taxonomy;
pub mod text;
pub mod train;
pub mod web;
