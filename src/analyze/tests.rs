//! The chain on a tiny model trained to a planted rule: keyword 0 is present exactly
//! when the word 배송 is.

use super::*;
use crate::model::testing::{tiny_classifier, tiny_folder, toy_options};
use crate::train::{fit, Dataset, Targets};

fn trained(outputs: usize, data: &Dataset, epochs: usize) -> (Classifier, Tokenizer) {
    let (model, varmap) = tiny_classifier(outputs, 11, 0.0);
    fit(&model, &varmap, outputs, data, None, &toy_options(epochs, 3), &mut |_| {}).unwrap();
    (model, tiny_folder().tokenizer)
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
        pooling: Default::default(),
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
