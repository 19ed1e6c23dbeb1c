//! `reviewloop apikey …`: keys for the analysis API from the command line (admins
//! have the same on /admin/api-keys).

use reviewloop::store::api_keys;

#[derive(clap::Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key; it is printed once and cannot be shown again.
    Create {
        name: String,
        /// Requests per minute this key may make.
        #[arg(long, default_value_t = 600)]
        rate: i32,
    },
    /// List keys (never the keys themselves: only their first characters).
    List,
    /// Revoke a key at once.
    Revoke { id: i64 },
}

pub async fn run(pool: &sqlx::PgPool, command: ApiKeyCommand) -> anyhow::Result<()> {
    match command {
        ApiKeyCommand::Create { name, rate } => {
            let (key, secret) = api_keys::create(pool, &name, rate, None).await?;
            eprintln!(
                "key {} `{}` ({} requests/minute); keep it now, it is not stored:",
                key.id, key.name, rate
            );
            println!("{secret}");
        }
        ApiKeyCommand::List => {
            println!(
                "{:>4}  {:<24} {:<12} {:>8}  {:<16} status",
                "id", "name", "starts", "req/min", "last used"
            );
            for k in api_keys::list(pool).await? {
                let used =
                    k.last_used_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or("–".into());
                let status = if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!(
                    "{:>4}  {:<24} {:<12} {:>8}  {:<16} {status}",
                    k.id, k.name, k.prefix, k.requests_per_minute, used
                );
            }
        }
        ApiKeyCommand::Revoke { id } => {
            anyhow::ensure!(api_keys::revoke(pool, id, None).await?, "no active key {id}");
            println!("key {id} revoked");
        }
    }
    Ok(())
}
