//! Tiny models learn toy tasks: the training loop, losses and thresholds together.

use candle_core::Device;
use candle_nn::VarMap;

use super::*;
use crate::model::classifier::{load_encoder_weights, Classifier, Head, Pooling};
use crate::model::outputs::{by_length, probabilities};
use crate::model::testing::{tiny_classifier, tiny_folder, tiny_headed_classifier};
use crate::train::testing::toy_options;

fn classifier(outputs: usize, seed: u64) -> (Classifier, VarMap) {
    tiny_classifier(outputs, seed, 0.1)
}

/// Reviews mentioning 배송 have keyword 0, those mentioning 색감 keyword 1.
fn toy_keywords() -> Dataset {
    let folder = tiny_folder();
    let openers = [
        "배송이 빨라요",
        "색감이 좋아요",
        "그냥 그래요",
        "배송 늦고 색감 별로",
        "사이즈 커요",
        "재구매 의사 있어요",
    ];
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (i, opener) in openers.iter().cycle().take(48).enumerate() {
        let text = format!("{opener} {}", ["정말", "너무", "조금", "많이"][i % 4]);
        rows.push(folder.tokenizer.encode(text.as_str(), true).unwrap().get_ids().to_vec());
        targets.push(vec![opener.contains("배송") as u8 as f32, opener.contains("색감") as u8 as f32]);
    }
    Dataset { rows, targets: Targets::MultiLabel(targets) }
}

fn options(epochs: usize) -> FitOptions {
    toy_options(epochs, 7)
}

#[test]
fn a_tiny_model_learns_a_separable_keyword_task() {
    let data = toy_keywords();
    let (model, varmap) = classifier(2, 1);
    let report = fit(&model, &varmap, 2, &data, None, &options(25), &mut |_| {}).unwrap();
    let first = report.epochs.first().unwrap().train_loss;
    let last = report.epochs.last().unwrap().train_loss;
    assert!(last < first * 0.3, "loss fell from {first} to {last}");
    let probs = probabilities(&model, &data.rows, true, 16).unwrap();
    let Targets::MultiLabel(truth) = &data.targets else { unreachable!() };
    let predicted: Vec<Vec<bool>> = probs.iter().map(|p| p.iter().map(|&x| x >= 0.5).collect()).collect();
    let truth: Vec<Vec<bool>> = truth.iter().map(|t| t.iter().map(|&x| x > 0.5).collect()).collect();
    let report = metrics::multi_label(&["배송".into(), "색감".into()], &truth, &predicted);
    assert!(report.micro.f1 > 0.95, "{}", metrics::table(&report));
}

#[test]
fn the_lexical_part_learns_a_word_rule_faster_than_the_encoder_alone() {
    let data = toy_keywords();
    let loss_after_three_epochs = |lexical_buckets| {
        let head = Head { outputs: 2, dropout: 0.1, pooling: Pooling::Mean, lexical_buckets };
        let (model, varmap) = tiny_headed_classifier(head, 1);
        let report = fit(&model, &varmap, 2, &data, None, &options(3), &mut |_| {}).unwrap();
        let learnt = varmap.data().lock().unwrap().get("lexical.weight").map(|v| v.abs().unwrap().max_all());
        (report.epochs.last().unwrap().train_loss, learnt.map(|m| m.unwrap().to_scalar::<f32>().unwrap()))
    };
    let (without, none) = loss_after_three_epochs(0);
    let (with, learnt) = loss_after_three_epochs(1 << 10);
    assert_eq!(none, None, "no lexical table unless asked for");
    assert!(learnt.unwrap() > 0.0, "the table starts at zero and must have learnt");
    assert!(with < without * 0.7, "loss with the lexical part {with}, without {without}");
}

#[test]
fn each_stage_updates_only_its_own_part() {
    let data = toy_keywords();
    let head = Head { outputs: 2, dropout: 0.0, pooling: Pooling::Mean, lexical_buckets: 1 << 10 };
    let (model, varmap) = tiny_headed_classifier(head, 1);
    let values = |prefix: &str| -> Vec<f32> {
        let data = varmap.data().lock().unwrap();
        let mut names: Vec<&String> = data.keys().filter(|n| n.starts_with(prefix)).collect();
        names.sort();
        names
            .iter()
            .flat_map(|n| data[*n].as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect()
    };
    let start = (values("roberta."), values("classifier."), values("lexical."));
    let staged = |parts| FitOptions { parts, ..options(1) };
    fit(&model, &varmap, 2, &data, None, &staged(optim::Parts::Lexical), &mut |_| {}).unwrap();
    let after_lexical = (values("roberta."), values("classifier."), values("lexical."));
    assert_eq!((&start.0, &start.1), (&after_lexical.0, &after_lexical.1), "encoder and head untouched");
    assert_ne!(start.2, after_lexical.2);
    fit(&model, &varmap, 2, &data, None, &staged(optim::Parts::Encoder), &mut |_| {}).unwrap();
    assert_eq!(values("lexical."), after_lexical.2, "the lexical part stays as the first stage left it");
    assert_ne!(values("roberta."), after_lexical.0);
}

#[test]
fn two_stages_make_one_log() {
    let log = |epochs: usize, best_epoch| FitReport {
        epochs: (1..=epochs)
            .map(|epoch| EpochLog {
                epoch,
                train_loss: 0.0,
                valid_loss: None,
                valid_score: None,
                seconds: 0.0,
            })
            .collect(),
        best_epoch,
        first_stage_epochs: 0,
    };
    let both = log(3, 2).then(log(2, 1));
    assert_eq!(both.epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    assert_eq!(both.best_epoch, 4);
    assert!(both.last_stage_kept());
    let first_kept = log(3, 2).then(log(2, 0));
    assert_eq!(first_kept.best_epoch, 2, "the second stage kept what the first left");
    assert!(!first_kept.last_stage_kept());
    assert!(log(3, 2).last_stage_kept(), "one stage: its best is its own");
}

#[test]
fn an_encoder_stage_that_only_gets_worse_keeps_the_lexical_stages_weights() {
    let data = toy_keywords();
    let head = Head { outputs: 2, dropout: 0.0, pooling: Pooling::Mean, lexical_buckets: 1 << 10 };
    let (model, varmap) = tiny_headed_classifier(head, 1);
    let staged = |parts| FitOptions { parts, patience: 2, ..options(6) };
    fit(&model, &varmap, 2, &data, None, &staged(optim::Parts::Lexical), &mut |_| {}).unwrap();
    let before = probabilities(&model, &data.rows, true, 16).unwrap();
    // Validation labels opposite to training: every encoder epoch makes them worse.
    let Targets::MultiLabel(t) = &data.targets else { unreachable!() };
    let flipped = Dataset {
        rows: data.rows.clone(),
        targets: Targets::MultiLabel(t.iter().map(|r| r.iter().map(|x| 1.0 - x).collect()).collect()),
    };
    let report =
        fit(&model, &varmap, 2, &data, Some(&flipped), &staged(optim::Parts::Encoder), &mut |_| {}).unwrap();
    assert_eq!(report.best_epoch, 0, "{:?}", report.epochs);
    assert_eq!(report.epochs.len(), 2, "stopped after patience epochs");
    assert_eq!(probabilities(&model, &data.rows, true, 16).unwrap(), before);
}

#[test]
fn the_same_seed_trains_the_same_model() {
    let data = toy_keywords();
    let run = || {
        let (model, varmap) = classifier(2, 3);
        fit(&model, &varmap, 2, &data, None, &options(2), &mut |_| {}).unwrap();
        probabilities(&model, &data.rows[..4], true, 4).unwrap()
    };
    assert_eq!(run(), run());
}

#[test]
fn early_stopping_keeps_the_best_validation_epoch() {
    let data = toy_keywords();
    let (model, varmap) = classifier(2, 1);
    let mut opts = options(30);
    opts.patience = 2;
    // Validation labels are the opposite of training: the validation score cannot keep
    // improving as the model learns.
    let Targets::MultiLabel(t) = &data.targets else { unreachable!() };
    let flipped = Dataset {
        rows: data.rows.clone(),
        targets: Targets::MultiLabel(t.iter().map(|r| r.iter().map(|x| 1.0 - x).collect()).collect()),
    };
    let report = fit(&model, &varmap, 2, &data, Some(&flipped), &opts, &mut |_| {}).unwrap();
    assert!(report.epochs.len() < 30, "stopped early after {} epochs", report.epochs.len());
    let best = report.epochs.iter().map(|e| e.valid_score.unwrap()).fold(f64::NEG_INFINITY, f64::max);
    let kept = &report.epochs[report.best_epoch - 1];
    assert_eq!(kept.valid_score.unwrap(), best);
    // The first epoch with the best score is kept, and patience epochs follow it.
    assert!(report.epochs[..report.best_epoch - 1].iter().all(|e| e.valid_score.unwrap() < best));
    assert_eq!(report.epochs.len(), report.best_epoch + opts.patience);
}

#[test]
fn a_sentiment_head_learns_levels_with_class_weights() {
    let folder = tiny_folder();
    let texts = [("좋아요 최고", 2u32), ("별로 최악", 0), ("보통 이에요", 1), ("좋아요 만족", 2)];
    let rows: Vec<Vec<u32>> = texts
        .iter()
        .cycle()
        .take(40)
        .map(|(t, _)| folder.tokenizer.encode(*t, true).unwrap().get_ids().to_vec())
        .collect();
    let classes: Vec<u32> = texts.iter().cycle().take(40).map(|(_, c)| *c).collect();
    let data = Dataset { rows, targets: Targets::SingleLabel(classes.clone()) };
    let (model, varmap) = classifier(3, 5);
    fit(&model, &varmap, 3, &data, None, &options(25), &mut |_| {}).unwrap();
    let probs = probabilities(&model, &data.rows, false, 16).unwrap();
    let predicted: Vec<usize> =
        probs.iter().map(|p| p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0).collect();
    let truth: Vec<usize> = classes.iter().map(|&c| c as usize).collect();
    let report = metrics::single_label(&["-1".into(), "0".into(), "1".into()], &truth, &predicted);
    assert!(report.macro_avg.f1 > 0.95, "{}", metrics::table(&report));
}

#[test]
fn a_pretrained_encoder_is_copied_into_a_fresh_classifier() {
    let (model, varmap) = classifier(2, 1);
    let copied = load_encoder_weights(&varmap, &tiny_folder().weights_path(), "roberta").unwrap();
    assert_eq!(copied, varmap.all_vars().len() - 2, "every encoder tensor, not the head");
    let reference = tiny_folder().load_encoder(&Device::Cpu).unwrap();
    let rows = vec![tiny_folder().tokenizer.encode("배송 빨라요", true).unwrap().get_ids().to_vec()];
    let a: Vec<f32> = model.encoder.forward(&rows, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = reference.forward(&rows, false).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(a, b);
}

#[test]
fn warm_up_then_linear_decay() {
    assert_eq!(learning_rate(1.0, 0, 10, 2), 0.5);
    assert_eq!(learning_rate(1.0, 1, 10, 2), 1.0);
    assert_eq!(learning_rate(1.0, 2, 10, 2), 1.0);
    assert_eq!(learning_rate(1.0, 6, 10, 2), 0.5);
    assert_eq!(learning_rate(1.0, 10, 10, 2), 0.0);
}

#[test]
fn token_dropout_masks_ordinary_tokens_only() {
    random::seed(9);
    let rows = vec![(0..1000).map(|i| i % 50).collect::<Vec<u32>>(); 4];
    let dropped = drop_tokens(rows.clone(), 0.2, 4);
    let mut masked = 0;
    for (before, after) in rows.iter().flatten().zip(dropped.iter().flatten()) {
        if before < &FIRST_ORDINARY_TOKEN {
            assert_eq!(before, after, "special tokens stay");
        } else if before != after {
            assert_eq!(*after, 4);
            masked += 1;
        }
    }
    let ordinary = rows.iter().flatten().filter(|&&t| t >= FIRST_ORDINARY_TOKEN).count();
    let share = masked as f64 / ordinary as f64;
    assert!((0.17..0.23).contains(&share), "{share}");
    assert_eq!(drop_tokens(rows.clone(), 0.0, 4), rows);
}

#[test]
fn a_student_learns_a_teachers_probabilities_unweighted() {
    // The teacher: a model trained on the toy task. The student: a fresh model taught
    // only by the teacher's probabilities, which it must reproduce.
    let data = toy_keywords();
    let (teacher, teacher_vars) = classifier(2, 1);
    fit(&teacher, &teacher_vars, 2, &data, None, &options(25), &mut |_| {}).unwrap();
    let taught = probabilities(&teacher, &data.rows, true, 16).unwrap();
    let lessons = Dataset { rows: data.rows.clone(), targets: Targets::Taught(taught.clone()) };
    let objective = Objective::for_targets(&lessons.targets, 2, &Device::Cpu).unwrap();
    let Objective::MultiLabel { pos_weight } = objective else { panic!("taught keywords are multi-label") };
    assert_eq!(
        pos_weight.to_vec1::<f32>().unwrap(),
        [1.0, 1.0],
        "the teacher's outputs are not weighted again"
    );
    let (student, student_vars) = classifier(2, 9);
    fit(&student, &student_vars, 2, &lessons, None, &options(25), &mut |_| {}).unwrap();
    let learnt = probabilities(&student, &data.rows, true, 16).unwrap();
    let gap =
        taught.iter().flatten().zip(learnt.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(gap < 0.2, "largest gap between teacher and student {gap}");
    let distribution = Targets::Distribution(vec![vec![0.9, 0.1, 0.0], vec![0.0, 0.2, 0.8]]);
    let Objective::Distribution { class_weight } =
        Objective::for_targets(&distribution, 3, &Device::Cpu).unwrap()
    else {
        panic!("distributions are learnt as distributions")
    };
    assert_eq!(class_weight.to_vec1::<f32>().unwrap(), [1.0, 1.0, 1.0]);
}

#[test]
fn rows_of_like_length_are_batched_together() {
    let rows: Vec<Vec<u32>> = [10, 256, 12, 9, 250, 30, 11].iter().map(|&n| vec![0; n]).collect();
    let batches = by_length(&rows, 3);
    assert_eq!(batches, vec![vec![3, 0, 6], vec![2, 5], vec![4, 1]], "9–11, then 12–30, then 250–256");
    assert!(by_length(&[], 4).is_empty());
}
