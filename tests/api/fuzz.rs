//! The analysis API fuzzed by a standard tool: schemathesis (from PyPI, installed by
//! `scripts/test.sh` into `.cache/fuzz-venv`) generates requests from
//! `/api/v1/openapi.json`, valid and not, and checks every answer: no server error,
//! each response as documented (status, content type, body schema), valid requests
//! accepted, invalid ones refused. A tiny served model and a valid key; the limits are
//! set so that no request the document calls valid is over the cost budget.

use std::path::Path;

use crate::analyze_api::serving;

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/fuzz-venv/bin/schemathesis");
    assert!(
        tool.exists(),
        "{} is missing: scripts/test.sh installs schemathesis there with pip (needs PyPI)",
        tool.display()
    );
    let s = serving(
        |settings| {
            settings.max_text_chars = 300;
            settings.web.serve.max_reviews = 8;
            settings.web.serve.max_cost = 100_000_000;
            settings.web.serve.queue_cost = 100_000_000;
        },
        false,
    )
    .await;
    let output = tokio::process::Command::new(&tool)
        .arg("run")
        .arg(s.app.url("/api/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {}", s.key)])
        .args(["--checks", "all", "--max-examples", "300", "--generation-deterministic"])
        .args(["--request-timeout", "60"])
        .env("NO_COLOR", "1")
        // Its cache of examples goes beside the run, not into the checkout.
        .current_dir(std::env::temp_dir())
        .output()
        .await
        .expect("schemathesis runs");
    let printed =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    eprintln!("{printed}");
    assert!(output.status.success(), "schemathesis found failures:\n{printed}");
    assert!(
        printed.contains("POST /api/v1/analyze") || printed.contains("1/1"),
        "it tested the endpoint:\n{printed}"
    );
}
