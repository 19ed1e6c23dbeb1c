use super::*;

/// A corpus of generated Korean lines held in memory.
struct Lines(Vec<String>);

impl CorpusStream for Lines {
    async fn read(&mut self, position: u64, n: usize) -> anyhow::Result<Vec<String>> {
        Ok(self.0.iter().skip(position as usize).take(n).cloned().collect())
    }
}

fn corpus() -> Lines {
    let words = ["배송", "빨라요", "색감", "예뻐요", "사이즈", "커요", "품질", "좋아요", "가격", "싸요"];
    Lines(
        (0..400)
            .map(|i| format!("{} {} {}", words[i % 10], words[(i * 3 + 1) % 10], words[(i * 7 + 2) % 10]))
            .collect(),
    )
}

fn data_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adapt-{}", uuid::Uuid::new_v4().simple()));
    let base = crate::bases::root(&dir).join("tiny");
    std::fs::create_dir_all(&base).unwrap();
    for entry in std::fs::read_dir(crate::model::testing::fixture("tiny-bert")).unwrap().flatten() {
        std::fs::copy(entry.path(), base.join(entry.file_name())).unwrap();
    }
    dir
}

fn settings(name: &str, steps: usize) -> AdaptSettings {
    let mut s =
        AdaptSettings::new(SafeName::parse("tiny").unwrap(), SafeName::parse(name).unwrap(), "lines".into());
    s.max_steps = Some(steps);
    s.batch_size = 8;
    s.learning_rate = 3e-3;
    s.warmup_steps = 2;
    s.held_out = 40;
    s.held_out_every = 10;
    s.checkpoint_every = 4;
    s
}

fn weights(dir: &Path) -> Vec<f32> {
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &candle_core::Device::Cpu).unwrap();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    names.iter().flat_map(|n| tensors[*n].flatten_all().unwrap().to_vec1::<f32>().unwrap()).collect()
}

/// The held-out loss falls on a tiny corpus, and the result is an ordinary base: a
/// masked-LM checkpoint (`bert.` + `cls.predictions.`) that opens, with its history.
#[tokio::test]
async fn pretraining_lowers_the_held_out_loss_and_writes_a_base() {
    let dir = data_dir();
    let report = run(&dir, &settings("adapted", 40), &mut corpus(), &mut |_| {}).await.unwrap();
    assert!(report.held_out > 10, "{report:?}");
    assert!(report.held_out_loss_after < report.held_out_loss_before - 0.5, "{report:?}");
    let folder = ModelFolder::open(&report.dir).unwrap();
    folder.load_encoder(&candle_core::Device::Cpu).unwrap();
    let info = crate::bases::describe(&report.dir).unwrap();
    assert!(info.steps.last().unwrap().contains("masked-language pre-training"), "{:?}", info.steps);
    assert!(
        !checkpoint_dir(&dir, &SafeName::parse("adapted").unwrap()).exists(),
        "the checkpoint is cleared"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A run stopped after its first checkpoints (as a kill would) resumes from the last
/// one and ends with exactly the weights of a run that was never stopped.
#[tokio::test]
async fn a_stopped_run_resumes_where_its_checkpoint_left_it() {
    let dir = data_dir();
    let whole = run(&dir, &settings("whole", 12), &mut corpus(), &mut |_| {}).await.unwrap();

    let stopped = settings("resumed", 12);
    let cancel = stopped.cancel.clone();
    let stop_at_10 = &mut |p: &AdaptProgress| {
        if p.step == 10 {
            cancel.cancel();
        }
    };
    let error = run(&dir, &stopped, &mut corpus(), stop_at_10).await.unwrap_err();
    assert!(error.to_string().contains("cancelled"), "{error}");
    let checkpoints = checkpoint_dir(&dir, &SafeName::parse("resumed").unwrap());
    let state: State =
        serde_json::from_str(&std::fs::read_to_string(checkpoints.join("state.json")).unwrap()).unwrap();
    assert_eq!(state.step, 8, "the last checkpoint before the stop");

    let resumed = run(&dir, &settings("resumed", 12), &mut corpus(), &mut |_| {}).await.unwrap();
    assert_eq!(resumed.resumed_from, Some(8));
    assert_eq!(resumed.steps, 12);
    assert_eq!(weights(&resumed.dir), weights(&whole.dir), "the same weights as without the stop");
    assert_eq!(resumed.held_out_loss_before, whole.held_out_loss_before);

    let other = AdaptSettings { batch_size: 4, ..settings("resumed", 12) };
    std::fs::create_dir_all(&checkpoints).unwrap();
    std::fs::write(checkpoints.join("state.json"), "{}").unwrap();
    std::fs::write(
        checkpoints.join("settings.json"),
        serde_json::to_string(&settings("resumed", 12)).unwrap(),
    )
    .unwrap();
    let refused = run(&dir, &other, &mut corpus(), &mut |_| {}).await.unwrap_err();
    assert!(refused.to_string().contains("other settings"), "{refused}");
    std::fs::remove_dir_all(dir).unwrap();
}
