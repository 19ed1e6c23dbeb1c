//! `user`: accounts and passwords.

use clap::Subcommand;
use reviewloop::store::{self, users::Role};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; the password comes from --password or the REVIEWLOOP_PASSWORD variable.
    Add {
        username: String,
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long, env = "REVIEWLOOP_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Set a new password (ends the user's sessions).
    Passwd {
        username: String,
        #[arg(long, env = "REVIEWLOOP_PASSWORD", hide_env_values = true)]
        password: String,
    },
    List,
}

pub async fn user(pool: &sqlx::PgPool, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { username, role, password } => {
            let user = store::users::create(pool, &username, &password, role).await?;
            println!("user {} ({}) created", user.username, user.role.as_str());
        }
        UserCommand::Passwd { username, password } => {
            anyhow::ensure!(
                store::users::set_password(pool, &username, &password).await?,
                "no user named {username}"
            );
            println!("password of {username} changed");
        }
        UserCommand::List => {
            for u in store::users::list(pool).await? {
                println!("{:<24} {}", u.username, u.role.as_str());
            }
        }
    }
    Ok(())
}
