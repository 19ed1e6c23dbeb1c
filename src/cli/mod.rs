//! The commands, one file per area: each holds its clap definitions beside their
//! handlers; `main.rs` parses and dispatches.

pub mod active;
pub mod api_keys;
pub mod audit;
pub mod bases;
pub mod bench;
pub mod data;
pub mod lighter;
pub mod loop_policy;
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

/// The fast mode of `simulate`, `audit` and `bench audit` with a base.
#[derive(clap::Args)]
pub struct FastMode {
    /// Keep the base's encoder frozen (but for its top --trained-layers) and compute
    /// what it makes of each review once, shared by every round, seed and fold; each
    /// training then fits only the heads and those layers. Needs --base.
    #[arg(long)]
    pub fast: bool,
    /// With --fast: encoder layers at the top trained with the heads.
    #[arg(long, default_value_t = 0, requires = "fast")]
    pub trained_layers: usize,
}

impl FastMode {
    /// Freezes `train` as asked and lets this process's models share their states.
    pub fn apply(&self, train: &mut reviewloop::train::settings::TrainSettings) -> anyhow::Result<()> {
        if self.fast {
            train.make_fast(self.trained_layers)?;
            reviewloop::model::features::share_across_models(reviewloop::model::features::DEFAULT_LIMIT);
        }
        Ok(())
    }
}

impl DataFile {
    pub fn taxonomy(&self) -> String {
        let default = if self.format == Format::NiklAbsa { "nikl-absa" } else { "fashion" };
        self.taxonomy.clone().unwrap_or_else(|| default.into())
    }
}
