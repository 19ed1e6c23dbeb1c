//! The commands, one file per area: each holds its clap definitions beside their
//! handlers; `main.rs` parses and dispatches.

pub mod active;
pub mod api_keys;
pub mod audit;
pub mod bases;
pub mod bench;
pub mod data;
pub mod lighter;
pub mod models;
pub mod pretrain;
pub mod rounds;
pub mod serve;
pub mod simulate;
pub mod users;

use std::path::PathBuf;

use reviewloop::import::Format;

/// A labelled file that a command reads without importing it into the working database.
#[derive(clap::Args)]
pub struct DataFile {
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum)]
    pub format: Format,
    /// Taxonomy (default: nikl-absa for that format, else fashion).
    #[arg(long)]
    pub taxonomy: Option<String>,
}

impl DataFile {
    pub fn taxonomy(&self) -> String {
        let default = if self.format == Format::NiklAbsa { "nikl-absa" } else { "fashion" };
        self.taxonomy.clone().unwrap_or_else(|| default.into())
    }
}
