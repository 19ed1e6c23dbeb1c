//! `reviewloop pretrain` as a user runs it: killed mid-run, run again, it resumes.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn tiny_base(data_dir: &Path) {
    let base = data_dir.join("base/tiny");
    std::fs::create_dir_all(&base).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-bert");
    for entry in std::fs::read_dir(fixture).unwrap().flatten() {
        std::fs::copy(entry.path(), base.join(entry.file_name())).unwrap();
    }
}

#[test]
fn a_killed_pretraining_run_resumes_from_its_last_checkpoint() {
    let dir = std::env::temp_dir().join(format!("pretrain-{}", uuid::Uuid::new_v4().simple()));
    tiny_base(&dir);
    let words = ["배송", "빨라요", "색감", "예뻐요", "사이즈", "커요", "품질", "좋아요"];
    let corpus: String =
        (0..2000).map(|i| format!("{} {} {i}\n", words[i % 8], words[(i * 3 + 1) % 8])).collect();
    std::fs::write(dir.join("corpus.txt"), corpus).unwrap();
    let run = |steps: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_reviewloop"));
        command.args(["pretrain", "--base", "tiny", "--corpus"]).arg(dir.join("corpus.txt"));
        command.args([
            "--max-steps",
            steps,
            "--batch-size",
            "4",
            "--checkpoint-every",
            "3",
            "--name",
            "tiny-dapt",
        ]);
        command.arg("--data-dir").arg(&dir).arg("--no-store");
        command
    };
    let mut child = run("100000").spawn().unwrap();
    let state = dir.join("base/.pretrain-tiny-dapt/state.json");
    let started = Instant::now();
    while !state.exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "no checkpoint within two minutes");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    let step = saved["step"].as_u64().unwrap();
    assert!(step >= 3 && step.is_multiple_of(3), "{saved}");

    let output = run(&(step + 6).to_string()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("resumed from the checkpoint at step {step}")), "{stdout}");
    assert!(stdout.contains(&format!("{} steps", step + 6)), "{stdout}");
    assert!(dir.join("base/tiny-dapt/model.safetensors").exists());
    std::fs::remove_dir_all(dir).unwrap();
}
