//! `loop`: a taxonomy's loop policy (when to retrain, how, when to promote, what round
//! next) and its cycles; the same as the engineer's loop page.

use clap::Subcommand;
use reviewloop::config::Settings;
use reviewloop::store::{self, loops};

#[derive(Subcommand)]
pub enum LoopCommand {
    /// The policy and the latest cycles.
    Show {
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
    },
    /// Change the policy; what is not given stays as it is.
    Set(SetArgs),
    /// Start a cycle now (it trains on the labels there are, then goes on by itself).
    Start {
        #[arg(long, default_value = "fashion")]
        taxonomy: String,
        /// What the timeline says started it.
        #[arg(long, default_value = "manual")]
        because: String,
        /// Only if the taxonomy has never run a cycle (a first start; says so otherwise).
        #[arg(long)]
        first: bool,
    },
}

#[derive(clap::Args)]
pub struct SetArgs {
    #[arg(long, default_value = "fashion")]
    taxonomy: String,
    /// Run the policy (workers start cycles by it).
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    #[arg(long)]
    disable: bool,
    /// Retrain after this many new labels (0: not by labels).
    #[arg(long)]
    every_labels: Option<i32>,
    /// Retrain this many hours after the last cycle began (0: no schedule).
    #[arg(long)]
    every_hours: Option<f32>,
    /// auto (fast on CPU, full when a GPU worker is registered), fast or full.
    #[arg(long, value_parser = ["auto", "fast", "full"])]
    profile: Option<String>,
    /// auto (by the promotion rule) or hold (a person promotes).
    #[arg(long, value_parser = ["auto", "hold"])]
    promote: Option<String>,
    /// Micro F1 a new version must gain to be promoted.
    #[arg(long)]
    margin: Option<f32>,
    /// The most F1 a keyword with enough test labels may lose.
    #[arg(long)]
    max_drop: Option<f32>,
    /// Only when no policy was ever saved for the taxonomy (a first start keeps what
    /// an engineer set since).
    #[arg(long)]
    if_unset: bool,
    /// Reviews in each round the loop composes.
    #[arg(long)]
    round_size: Option<i32>,
    #[arg(long, value_parser = ["off", "shown", "prefilled"])]
    assist: Option<String>,
    /// Share of a round's items given to two annotators (0–1).
    #[arg(long)]
    double_share: Option<f32>,
    /// The next round is composed once the open rounds are this far done (0–1).
    #[arg(long)]
    mostly_done: Option<f32>,
}

impl SetArgs {
    fn apply(&self, p: &mut loops::Policy) {
        if self.enable || self.disable {
            p.enabled = self.enable;
        }
        if let Some(n) = self.every_labels {
            p.every_labels = (n > 0).then_some(n);
        }
        if let Some(h) = self.every_hours {
            p.every_hours = (h > 0.0).then_some(h);
        }
        let set = |target: &mut String, value: &Option<String>| {
            if let Some(v) = value {
                *target = v.clone();
            }
        };
        set(&mut p.profile, &self.profile);
        set(&mut p.promote, &self.promote);
        set(&mut p.assist, &self.assist);
        p.margin = self.margin.unwrap_or(p.margin);
        p.max_drop = self.max_drop.unwrap_or(p.max_drop);
        p.round_size = self.round_size.unwrap_or(p.round_size);
        p.double_share = self.double_share.unwrap_or(p.double_share);
        p.mostly_done = self.mostly_done.unwrap_or(p.mostly_done);
    }
}

pub async fn run(pool: &sqlx::PgPool, settings: &Settings, command: LoopCommand) -> anyhow::Result<()> {
    match command {
        LoopCommand::Show { taxonomy } => {
            let id = store::taxonomies::load_by_name(pool, &taxonomy).await?.id;
            println!("{}", serde_json::to_string_pretty(&loops::policy(pool, id).await?)?);
            for c in loops::cycles(pool, id, 10).await? {
                println!(
                    "cycle {:>4}  {}  {:<14} {:<9} version {:<12} round {}  {}",
                    c.id,
                    c.started_at.format("%Y-%m-%d %H:%M"),
                    c.state,
                    c.decision.as_deref().unwrap_or("-"),
                    c.version.as_deref().unwrap_or("-"),
                    c.round_id.map_or("-".into(), |r| r.to_string()),
                    c.decision_reason.as_deref().or(c.note.as_deref()).unwrap_or("")
                );
            }
        }
        LoopCommand::Set(args) => {
            let id = store::taxonomies::load_by_name(pool, &args.taxonomy).await?.id;
            if args.if_unset && loops::policy_saved(pool, id).await? {
                println!("{}'s loop policy was set before: left as it is", args.taxonomy);
                return Ok(());
            }
            let mut policy = loops::policy(pool, id).await?;
            args.apply(&mut policy);
            reviewloop::cycles::check(&policy)?;
            loops::save_policy(pool, &policy, None).await?;
            println!("{}", serde_json::to_string_pretty(&policy)?);
        }
        LoopCommand::Start { taxonomy, because, first } => {
            let id = store::taxonomies::load_by_name(pool, &taxonomy).await?.id;
            if first && !loops::cycles(pool, id, 1).await?.is_empty() {
                println!("{taxonomy} has run cycles before: none started (see `reviewloop loop show`)");
                return Ok(());
            }
            match reviewloop::cycles::start(pool, &settings.data_dir, id, &because, None).await? {
                Ok(cycle) => println!("cycle {cycle} started: its training is queued for a worker"),
                Err(refused) => anyhow::bail!("no cycle started: {refused}"),
            }
        }
    }
    Ok(())
}
