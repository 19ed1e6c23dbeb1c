//! The chain on a tiny model trained to a planted rule: keyword 0 is present exactly
//! when the word 배송 is.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::analyze::*;
use crate::model::classifier::Classifier;
use crate::model::classifier::Pooling;
use crate::model::folder::ModelFolder;
use crate::model::inputs::SentimentInput;
use crate::model::testing::{tiny_folder, tiny_pooled_classifier};
use crate::model::version::Labels;
use crate::train::testing::toy_options;
use crate::train::{fit, Dataset, Targets};

fn trained(outputs: usize, data: &Dataset, epochs: usize, pooling: Pooling) -> (Classifier, Tokenizer) {
    let (model, varmap) = tiny_pooled_classifier(outputs, 11, 0.0, pooling);
    fit(&model, &varmap, outputs, data, None, &toy_options(epochs, 3), &mut |_| {}).unwrap();
    (model, tiny_folder().tokenizer)
}

fn labels(kind: &str, pooling: Pooling) -> Labels {
    Labels {
        kind: kind.into(),
        taxonomy: "t".into(),
        keywords: vec!["배송".into(), "색상".into()],
        thresholds: vec![0.5, 0.5],
        scale_min: -1,
        scale_max: 1,
        sentiment_input: Some(SentimentInput::Pair),
        pooling,
        lexical_buckets: 0,
        frozen_layers: 0,
    }
}

/// Keyword 배송 is present exactly when the word 배송 is; every level is "+1".
fn planted(pooling: Pooling) -> Analyzer {
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
        trained(2, &Dataset { rows: rows.clone(), targets: Targets::MultiLabel(targets) }, 25, pooling);
    let (sentiment, _) =
        trained(3, &Dataset { rows, targets: Targets::SingleLabel(vec![2; 60]) }, 3, pooling);
    Analyzer {
        keyword: LoadedModel {
            classifier: keyword,
            labels: labels("keyword", pooling),
            tokenizer: tokenizer.clone(),
        },
        sentiment: LoadedModel { classifier: sentiment, labels: labels("sentiment", pooling), tokenizer },
        top_words: 3,
        fast_candidates: FAST_CANDIDATES,
    }
}

#[test]
fn highlights_point_at_the_word_that_decides_the_keyword() {
    let analyzer = planted(Pooling::First);
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

#[test]
fn fast_highlights_find_the_deciding_word_with_fewer_masks() {
    let analyzer = planted(Pooling::Mean);
    let texts: Vec<String> = ["오늘 정말 배송 왔어요 좋아요 그냥 사이즈", "배송 오늘 그냥", "정말 좋아요"]
        .map(String::from)
        .to_vec();
    let fast = analyzer.analyze_many(&texts, &[Highlights::Fast; 3]).unwrap();
    let mask = analyzer.analyze_many(&texts, &[Highlights::Mask; 3]).unwrap();
    for (f, m) in fast.iter().zip(&mask).take(2) {
        let (f, m) = (&f.keywords[0], &m.keywords[0]);
        assert_eq!(f.highlights[0].word, "배송", "{f:?}");
        assert_eq!(
            (f.highlights[0].start, f.highlights[0].end),
            (m.highlights[0].start, m.highlights[0].end)
        );
        assert!((f.highlights[0].drop - m.highlights[0].drop).abs() < 1e-5, "the same masked drop");
        assert!(f.probability == m.probability);
    }
    assert!(fast[2].keywords.is_empty());
    // Mixed in one batch, each review gets what it asked for.
    let mixed = analyzer.analyze_many(&texts[..2], &[Highlights::None, Highlights::Fast]).unwrap();
    assert!(mixed[0].keywords[0].highlights.is_empty());
    assert_eq!(mixed[1].keywords[0].highlights[0].word, "배송");
}

#[test]
fn only_words_inside_the_encoded_tokens_are_masked_and_the_cost_says_so() {
    let analyzer = planted(Pooling::First);
    // 64 tokens at most: 배송 first, then far more words than the encoder reads.
    let long = format!("배송 {}", "오늘 정말 ".repeat(400));
    let words = crate::text::word_spans(&long).len();
    let staged = analyzer.stage(std::slice::from_ref(&long), &[Ask::Analysis(Highlights::Mask)]).unwrap();
    let masked = staged[0].masks_left();
    assert!(masked > 10 && masked < 64, "{masked} of {words} words are inside the tokens");
    assert_eq!(staged[0].tokens, analyzer.keyword.max_tokens());
    let cost = analyzer.cost(&long, Ask::Analysis(Highlights::Mask));
    assert_eq!(cost.masks, masked as u64, "the bound counts exactly the words masked");
    assert_eq!(cost.per_mask, staged[0].tokens as u64);
    assert_eq!(analyzer.cost(&long, Ask::Analysis(Highlights::None)).masks, 0);
    // The words past the encoded part would have changed nothing.
    let analysis = analyzer.analyze(&long, true).unwrap();
    let limit = long.chars().count() / 4;
    for k in &analysis.keywords {
        assert!(k.highlights.iter().all(|h| h.end <= limit), "{:?}", k.highlights);
    }
    assert_eq!(analysis.keywords[0].highlights[0].word, "배송");
}

#[test]
fn a_review_masked_a_few_words_at_a_time_gets_the_same_answer() {
    let analyzer = planted(Pooling::Mean);
    let texts = vec!["오늘 정말 배송 왔어요 좋아요 그냥 사이즈".to_string(), "배송 오늘 그냥".to_string()];
    let whole = analyzer.analyze_many(&texts, &[Highlights::Mask; 2]).unwrap();
    let mut staged = analyzer.stage(&texts, &[Ask::Analysis(Highlights::Mask); 2]).unwrap();
    while staged.iter().any(|s| s.masks_left() > 0) {
        let mut work: Vec<(&mut Staged, usize)> = staged.iter_mut().map(|s| (s, 2)).collect();
        analyzer.mask(&mut work).unwrap();
    }
    let stepped: Vec<Analysis> = staged.into_iter().map(|s| analyzer.finish(s)).collect();
    for (a, b) in whole.iter().zip(&stepped) {
        let words =
            |x: &Analysis| x.keywords[0].highlights.iter().map(|h| (h.start, h.end)).collect::<Vec<_>>();
        assert_eq!(words(a), words(b));
        assert!((a.keywords[0].highlights[0].drop - b.keywords[0].highlights[0].drop).abs() < 1e-5);
    }
}

#[test]
fn a_cost_bounds_every_pass_a_review_can_take() {
    let analyzer = planted(Pooling::First);
    let cost = analyzer.cost("오늘 배송 왔어요", Ask::Analysis(Highlights::Mask));
    let tokens = analyzer.keyword.tokenizer.encode("오늘 배송 왔어요", true).unwrap().len() as u64;
    assert_eq!(cost.per_mask, tokens);
    assert_eq!(cost.masks, 3);
    let keywords = analyzer.keyword.labels.keywords.len() as u64;
    assert_eq!(cost.stage, tokens + keywords * (tokens + 16).min(analyzer.sentiment.max_tokens() as u64));
    assert_eq!(cost.total(), cost.stage + 3 * tokens);
    assert!(cost.typical_stage <= cost.stage);
}
