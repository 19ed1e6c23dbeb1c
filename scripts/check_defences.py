#!/usr/bin/env python3
"""Each defence of the second security pass (docs/security.md) undone in turn, and the
tests that must then fail run: prints, per defence, which failed. Restores every file.
Usage: python3 scripts/check_defences.py [NAME-FRAGMENT ...] (from the repository root)."""
import os
import subprocess
import sys
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
M = [
 ("csrf on the raw path", "src/web/csrf.rs",
  "    let expected = expected_token(rule, req).await?.ok_or(AppError::Csrf)?;",
  "    if rule == Rule::LoginForm && req.path() != \"/login\" { return Ok(()); }\n    let expected = expected_token(rule, req).await?.ok_or(AppError::Csrf)?;",
  ["security::the_login_form_is_checked", "security::every_route"]),
 ("token from the query string", "src/web/csrf.rs",
  "    let content_type = req.headers().get(header::CONTENT_TYPE)",
  "    let query: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string()).unwrap_or_default();\n    if let Some((_, t)) = query.into_iter().find(|(k, _)| k == \"csrf\") { return Ok(Some(t)); }\n    let content_type = req.headers().get(header::CONTENT_TYPE)",
  ["csrf::the_token_comes_as", "csrf::an_upload_without"]),
 ("not counted before the check", "src/web/login_gate.rs",
  "        self.throttle.attempt(&borrowed).map_err(Refused::Wait)?;",
  "",
  ["login::fifty_wrong_passwords"]),
 ("no check slots", "src/web/login_gate.rs",
  "        let slot = self.checks.try_acquire().map_err(|_| Refused::Busy)?;",
  "        let slot = self.checks.try_acquire().unwrap_or_else(|_| { let s = Box::leak(Box::new(Semaphore::new(1))); s.try_acquire().unwrap() });",
  ["web::login_gate::tests::checks_beyond"]),
 ("forwarded-for from anyone", "src/web/client.rs",
  "        if !trusted.contains(&client) {",
  "        if false && !trusted.contains(&client) {",
  ["login::forwarded_for_is_believed", "web::client::tests"]),
 ("no known devices", "src/web/login.rs",
  "        Some(cookie) => devices::known(&state.pool, cookie.value(), username).await?,",
  "        Some(_) => None,",
  ["login::a_guesser_on_many_addresses"]),
 ("API not charged at admission", "src/web/analyze_api.rs",
  "    charged(state, &caller, state.serving.rate.admit(&caller.id, per_minute))?;",
  "    let _ = per_minute;",
  ["analyze_api::refused_requests_are_charged"]),
 ("unknown taxonomy behind the load lock", "src/serve/registry.rs",
  "        if !self.exists(taxonomy).await? {",
  "        if false && !self.exists(taxonomy).await? {",
  ["analyze_api::an_unknown_taxonomy_is_answered"]),
 ("closed rounds take answers", "src/store/assignments.rs",
  "    if !open {\n        return Ok(Submitted::RoundClosed);",
  "    if false && !open {\n        return Ok(Submitted::RoundClosed);",
  ["annotate::a_closed_round"]),
 ("cookies never Secure", "src/web/cookies.rs",
  "            .secure(secure)",
  "            .secure(false)",
  ["security::behind_https"]),
 ("pages stored", "src/web/headers.rs",
  "    if !headers.contains_key(header::CACHE_CONTROL) {",
  "    if false && !headers.contains_key(header::CACHE_CONTROL) {",
  ["security::pages_are_never_stored"]),
 ("database errors shown", "src/store/jobs.rs",
  "            EnqueueError::Database(e) => crate::error::AppError::Database(e),",
  "            EnqueueError::Database(e) => crate::error::AppError::Conflict(e.to_string()),",
  ["security::a_database_error"]),
 ("suspects unpaginated", "src/web/qa.rs",
  "const PAGE: i64 = 50;",
  "const PAGE: i64 = 500;",
  ["qa::a_keywords_suspects_come", "qa::disagreements_come"]),
]
only = sys.argv[1:]
for name, path, old, new, tests in M:
    if only and not any(o in name for o in only):
        continue
    src = open(os.path.join(ROOT, path)).read()
    assert old in src, (name, old)
    open(os.path.join(ROOT, path), "w").write(src.replace(old, new, 1))
    try:
        results = []
        for t in tests:
            lib = t.startswith("web::")
            cmd = ["cargo", "test", "--lib" if lib else "--test", *([] if lib else ["api"]), "--", t]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            text = out.stdout + out.stderr
            failed = [l.split()[1] for l in text.splitlines() if l.startswith("test ") and l.endswith("FAILED")]
            compiled = "error[" not in text
            results.append(f"{t}: {'FAILED ' + ','.join(failed) if failed else ('passed' if compiled else 'did not compile')}")
        print(f"{name}: " + " | ".join(results), flush=True)
    finally:
        open(os.path.join(ROOT, path), "w").write(src)
