//! `round`: composing, listing and closing labelling rounds.

use clap::Subcommand;
use reviewloop::rounds::{self, GroupBy, RoundSpec, Sampling};
use reviewloop::store;

#[derive(Subcommand)]
pub enum RoundCommand {
    /// Sample a new round from the unlabelled, unqueued reviews.
    New {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
        /// Number of reviews.
        #[arg(long)]
        size: usize,
        #[arg(long, value_enum, default_value = "random")]
        sampling: Sampling,
        /// Groups kept in proportion with --sampling proportional.
        #[arg(long, value_enum, default_value = "mall-category")]
        by: GroupBy,
        /// Share of items given to two annotators (0–1), for agreement.
        #[arg(long, default_value_t = 0.0)]
        double_share: f64,
        /// Comma-separated annotator usernames; everyone when omitted.
        #[arg(long, value_delimiter = ',')]
        annotators: Vec<String>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Pick by the serving model's scores with these quotas, e.g.
        /// `keyword-boundary=0.4,sentiment-uncertainty=0.2,rare-tokens=0.15,cluster-outliers=0.15,random=0.1`
        /// (or one name: `rare-tokens`). Mall / category shares follow --by.
        #[arg(long, value_parser = parse_quotas)]
        strategy: Option<Vec<reviewloop::select::Quota>>,
        /// The serving model's suggestions on the annotation page: off, shown (visible,
        /// nothing ticked) or prefilled (ticked, to confirm or correct).
        #[arg(long, value_enum, default_value_t = reviewloop::rounds::Assist::Off)]
        assist: reviewloop::rounds::Assist,
        /// Suggestions also on the items double-assigned for agreement.
        #[arg(long)]
        assist_doubled: bool,
        /// With --strategy: keep each strategy's picks apart in embedding space (a
        /// core-set of three times as many candidates), so no batch is near-duplicates.
        #[arg(long)]
        diverse: bool,
    },
    /// Rounds with their progress.
    List,
    /// Close a round: its unlabelled reviews return to the pool.
    Close { id: i64 },
}

fn parse_quotas(text: &str) -> Result<Vec<reviewloop::select::Quota>, String> {
    reviewloop::select::Quota::parse_list(text)
}

pub async fn round(pool: &sqlx::PgPool, cmd: RoundCommand) -> anyhow::Result<()> {
    match cmd {
        RoundCommand::New {
            name,
            taxonomy,
            size,
            sampling,
            by,
            double_share,
            annotators,
            seed,
            strategy,
            assist,
            assist_doubled,
            diverse,
        } => {
            let taxonomy_id = store::taxonomies::load_by_name(pool, &taxonomy).await?.id;
            let quotas = strategy.unwrap_or_default();
            let spec = RoundSpec {
                name,
                size,
                sampling,
                group_by: by,
                double_share,
                seed,
                members: annotators,
                quotas,
                assist,
                assist_doubled,
                diverse,
                cycle: None,
            };
            let round = rounds::create(pool, taxonomy_id, &spec, None).await?;
            println!("round {} created: {} items, {} double-assigned", round.id, round.items, round.doubled);
        }
        RoundCommand::List => {
            println!(
                "{:>5}  {:<24} {:<13} {:<7} {:>6} {:>9}",
                "id", "name", "sampling", "status", "items", "done"
            );
            for r in store::rounds::list(pool).await? {
                println!(
                    "{:>5}  {:<24} {:<13} {:<7} {:>6} {:>4}/{:<4}",
                    r.id, r.name, r.sampling, r.status, r.items, r.done, r.required
                );
            }
        }
        RoundCommand::Close { id } => {
            anyhow::ensure!(store::rounds::close(pool, id, None).await?, "round {id} is not open");
            println!("round {id} closed");
        }
    }
    Ok(())
}
