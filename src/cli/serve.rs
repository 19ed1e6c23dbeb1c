//! `serve`: the web app, with a job worker on its own thread unless told otherwise.
//! The web app's settings are this command's flags only (other commands never show them).

use reviewloop::config::{Settings, WebSettings};
use reviewloop::store;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "REVIEWLOOP_BIND", default_value = "127.0.0.1:8080")]
    bind: String,
    /// Do not run jobs in this process (run `reviewloop worker` elsewhere instead).
    #[arg(long, env = "REVIEWLOOP_NO_WORKER")]
    no_worker: bool,
    #[command(flatten)]
    web: WebSettings,
}

pub async fn serve(pool: sqlx::PgPool, settings: &Settings, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(password) = store::users::create_first_admin(&pool).await? {
        eprintln!("first start: created user `admin` with password `{password}`");
        eprintln!("change it with `reviewloop user passwd admin --password …`");
    }
    let settings = Settings { web: args.web, ..settings.clone() };
    let app = reviewloop::web::Application::build(pool.clone(), settings.clone(), &args.bind).await?;
    eprintln!("reviewloop listening on http://{}", app.address());
    let shutdown = reviewloop::cancel::Cancel::default();
    if !args.no_worker {
        let mut config = reviewloop::jobs::WorkerConfig::new(settings.data_dir.clone());
        config.storage = settings.storage.clone();
        eprintln!("running jobs in this process: {}", super::active::describe(&pool, &config)?);
        reviewloop::jobs::worker::spawn(settings.database_url.clone(), config, shutdown.clone())?;
    }
    app.run_until_stopped().await?;
    shutdown.cancel();
    Ok(())
}
