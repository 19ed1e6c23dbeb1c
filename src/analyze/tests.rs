//! The chain on a tiny model trained to a planted rule: keyword 0 is present exactly
//! when the word 배송 is.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

use super::*;
use crate::model::classifier::initialise;
use crate::train::{fit, Dataset, FitOptions, Targets};

fn trained(outputs: usize, data: &Dataset, epochs: usize) -> (Classifier, Tokenizer) {
    let folder =
        ModelFolder::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-roberta"))
            .unwrap();
    let varmap = VarMap::new();
    let model = Classifier::load(
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        &folder.config,
        outputs,
        0.0,
    )
    .unwrap();
    initialise(&varmap, 11).unwrap();
    let options = FitOptions {
        epochs,
        batch_size: 8,
        learning_rate: 3e-3,
        warmup_ratio: 0.1,
        weight_decay: 0.0,
        patience: 100,
        seed: 3,
    };
    fit(&model, &varmap, outputs, data, None, &options, &mut |_| {}).unwrap();
    (model, folder.tokenizer)
}

fn labels(kind: &str) -> Labels {
    Labels {
        kind: kind.into(),
        taxonomy: "t".into(),
        keywords: vec!["배송".into(), "색상".into()],
        thresholds: vec![0.5, 0.5],
        scale_min: -1,
        scale_max: 1,
        sentiment_input: Some(SentimentInput::Pair),
    }
}

#[test]
fn highlights_point_at_the_word_that_decides_the_keyword() {
    let folder =
        ModelFolder::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-roberta"))
            .unwrap();
    let fillers = ["오늘", "정말", "좋아요", "그냥", "왔어요", "사이즈"];
    let (mut rows, mut targets) = (Vec::new(), Vec::new());
    for i in 0..60 {
        let mut words = vec![fillers[i % 6], fillers[(i / 6) % 6], fillers[(i + 3) % 6]];
        let planted = i % 2 == 0;
        if planted {
            words.insert(i % 3, "배송");
        }
        let text = words.join(" ");
        rows.push(folder.tokenizer.encode(text.as_str(), true).unwrap().get_ids().to_vec());
        targets.push(vec![planted as u8 as f32, 0.0]);
    }
    let (keyword, tokenizer) =
        trained(2, &Dataset { rows: rows.clone(), targets: Targets::MultiLabel(targets) }, 25);
    let (sentiment, _) = trained(3, &Dataset { rows, targets: Targets::SingleLabel(vec![2; 60]) }, 3);
    let analyzer = Analyzer {
        keyword: LoadedModel { classifier: keyword, labels: labels("keyword"), tokenizer: tokenizer.clone() },
        sentiment: LoadedModel { classifier: sentiment, labels: labels("sentiment"), tokenizer },
        top_words: 3,
    };
    let analysis = analyzer.analyze("오늘 배송 왔어요 좋아요", true).unwrap();
    assert_eq!(analysis.keywords.len(), 1, "{analysis:?}");
    let found = &analysis.keywords[0];
    assert_eq!(found.keyword, "배송");
    assert_eq!(found.sentiment, 1);
    assert!((found.distribution.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    let top = &found.highlights[0];
    assert_eq!((top.word.as_str(), top.start, top.end), ("배송", 3, 5), "{:?}", found.highlights);
    assert!(top.drop > 0.3, "masking 배송 should matter: {top:?}");
    assert!(analyzer.analyze("오늘 정말 좋아요", true).unwrap().keywords.is_empty());
    // Empty and very long reviews are answered, not refused.
    assert_eq!(analyzer.analyze("", true).unwrap().probabilities.len(), 2);
    assert_eq!(analyzer.analyze(&"배송 ".repeat(500), true).unwrap().probabilities.len(), 2);
}
