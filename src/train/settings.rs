//! What a training run is told: one type, [`TrainSettings`], with its defaults written
//! once in two profiles (from scratch, and fine-tuning a pretrained base, which starts
//! from the first), and [`TrainOverrides`], the options a person may change, parsed
//! from the same definition by clap (`reviewloop train`) and by the training page's
//! form, checked in one place, and shown with both profiles' defaults in `--help`.

use std::path::PathBuf;
use std::str::FromStr;

use clap::ValueEnum;
use serde::{Deserialize, Deserializer, Serialize};

use super::FitOptions;
use crate::model::classifier::{Head, Pooling};
use crate::model::inputs::SentimentInput;
use crate::names::SafeName;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainSettings {
    pub taxonomy: String,
    /// Version name; a timestamp when absent.
    pub name: Option<String>,
    /// A base under the data dir's `base/` (a pretrained encoder: the converted e5,
    /// klue/roberta-base copied in); the encoder trained here when absent.
    pub base: Option<SafeName>,
    /// Where bases are found when not under `models_dir` (simulations write their
    /// versions to scratch folders but start from the data dir's bases).
    #[serde(skip)]
    pub bases_dir: Option<PathBuf>,
    /// Train on train + validation with no early stopping (the seed's second setting).
    pub all_data: bool,
    pub fit: FitOptions,
    pub vocab_size: usize,
    pub sentiment_input: SentimentInput,
    pub models_dir: PathBuf,
    /// Where the finished version is stored for every host (set by the worker or the
    /// command, never by a payload); none: on this host's disk only (simulations,
    /// tests), recorded by its absolute path.
    #[serde(skip)]
    pub storage: Option<crate::config::StorageLocation>,
    /// Classifier dropout (the seed used 0.2).
    pub dropout: f32,
    /// Epochs of masked-language-model pre-training of the offline encoder on all the
    /// taxonomy's reviews before fine-tuning (0: none; ignored with `base`).
    pub pretrain_epochs: usize,
    pub pooling: Pooling,
    /// Start the sentiment model from the trained keyword model's encoder.
    pub sentiment_from_keyword: bool,
    /// Train on this label snapshot; a new one of the current labels when absent.
    #[serde(default)]
    pub snapshot: Option<i64>,
    /// Size of the offline encoder (ignored with `base`); the documented default when
    /// absent. Simulations use a smaller one to run many rounds.
    #[serde(default)]
    pub encoder_size: Option<EncoderSize>,
    /// Hashed character n-gram features of the classifiers' lexical part (0: none);
    /// [`DEFAULT_LEXICAL_BUCKETS`] when absent, for a pretrained base too: on NIKL the
    /// fine-tuned e5 alone fell below TF-IDF + LR, and with the lexical part beside it
    /// rose above (docs/pretrained.md).
    #[serde(default)]
    pub lexical_buckets: Option<usize>,
}

/// The lexical part's size for an encoder trained here: 2^16 hashed character n-grams
/// (NIKL's reviews hold about 40,000 distinct ones).
pub const DEFAULT_LEXICAL_BUCKETS: usize = 1 << 16;

/// Layers and hidden width of an encoder trained here (heads: hidden / 64, feed-forward:
/// 4 × hidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSize {
    pub layers: usize,
    pub hidden: usize,
}

impl TrainSettings {
    /// What `train`, the training page and queued jobs start from: fine-tuning the
    /// default base (`REVIEWLOOP_BASE`, else `base/default`) when there is one, else
    /// the encoder trained here.
    pub fn configured(taxonomy: &str, models_dir: PathBuf) -> anyhow::Result<Self> {
        Ok(match crate::bases::default_name(&models_dir)? {
            Some(base) => TrainSettings::pretrained(taxonomy, models_dir, base),
            None => TrainSettings::defaults(taxonomy, models_dir),
        })
    }

    /// The profile of `base` when given, else from scratch: what `audit`, `simulate`
    /// and `distill` start from (their own default is from scratch).
    pub fn starting_from(taxonomy: &str, models_dir: PathBuf, base: Option<SafeName>) -> Self {
        match base {
            Some(base) => TrainSettings::pretrained(taxonomy, models_dir, base),
            None => TrainSettings::defaults(taxonomy, models_dir),
        }
    }

    /// Fine-tuning the pretrained `base` (measured on NIKL; see docs/pretrained.md).
    /// Patience covers every epoch: beside the fixed lexical part the fine-tuned encoder
    /// dips below its first epoch's score for a few epochs and rises above it only once
    /// the learning rate decays (on NIKL patience 3 stopped it at 0.664 validation
    /// micro F1 after four epochs; all ten reached 0.692).
    pub fn pretrained(taxonomy: &str, models_dir: PathBuf, base: SafeName) -> Self {
        let scratch = TrainSettings::defaults(taxonomy, models_dir);
        TrainSettings {
            base: Some(base),
            fit: FitOptions {
                epochs: 10,
                learning_rate: 1e-4,
                head_rate: 20.0,
                patience: 10,
                ..scratch.fit.clone()
            },
            dropout: 0.1,
            ..scratch
        }
    }

    /// The encoder trained here, from scratch (measured on NIKL; see docs/models.md):
    /// the one place every training default is written.
    pub fn defaults(taxonomy: &str, models_dir: PathBuf) -> Self {
        TrainSettings {
            taxonomy: taxonomy.to_string(),
            name: None,
            base: None,
            bases_dir: None,
            all_data: false,
            fit: FitOptions {
                epochs: 40,
                batch_size: 32,
                learning_rate: 5e-4,
                warmup_ratio: 0.1,
                weight_decay: 0.01,
                patience: 8,
                seed: 42,
                token_dropout: 0.0,
                mask_token: super::default_mask_token(),
                lexical_rate: super::default_lexical_rate(),
                lexical_epochs: super::default_lexical_epochs(),
                head_rate: 1.0,
                frozen: Default::default(),
                validation_floor: 0,
                parts: Default::default(),
                cancel: Default::default(),
            },
            vocab_size: 8000,
            sentiment_input: SentimentInput::Pair,
            models_dir,
            storage: None,
            dropout: 0.2,
            pretrain_epochs: 0,
            pooling: Pooling::Mean,
            sentiment_from_keyword: false,
            snapshot: None,
            encoder_size: None,
            lexical_buckets: None,
        }
    }

    /// The fast mode of simulations and audits: the base's encoder kept as it is but
    /// for its top `trained` layers, so that what the frozen part makes of a review is
    /// computed once (`model::features`) and each round trains only the heads and those
    /// layers. Needs a base: an encoder trained here has nothing worth freezing.
    pub fn make_fast(&mut self, trained: usize) -> anyhow::Result<()> {
        let Some(base) = &self.base else {
            anyhow::bail!("the fast mode freezes a pretrained base's encoder: name one with --base");
        };
        let dir = crate::bases::resolve(self.bases_dir.as_deref().unwrap_or(&self.models_dir), base)?;
        let layers = crate::model::folder::read_config(&dir)?.num_hidden_layers;
        anyhow::ensure!(
            trained < layers,
            "{base} has {layers} layers: train fewer than that in the fast mode"
        );
        self.fit.frozen = crate::model::encoder::Frozen { embeddings: true, layers: layers - trained };
        // A head on fixed states learns slowly at the fine-tuning rate: on NIKL's
        // validation split ×100 (1e-2) and ×300 reached 0.670 and 0.668 keyword micro F1
        // against 0.666 at ×20, and sentiment macro F1 0.595 and 0.619 against 0.581
        // (docs/pretrained.md#fast-mode).
        self.fit.head_rate = 100.0;
        Ok(())
    }

    pub fn lexical_buckets(&self) -> usize {
        self.lexical_buckets.unwrap_or(DEFAULT_LEXICAL_BUCKETS)
    }

    /// What sits on the encoder of a model with `outputs`.
    pub fn head(&self, outputs: usize) -> Head {
        Head {
            outputs,
            dropout: self.dropout,
            pooling: self.pooling,
            lexical_buckets: self.lexical_buckets(),
        }
    }
}

/// The options a person may set for a run; each left out keeps the chosen profile's
/// value. A blank field of the training page's form counts as left out.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
pub struct TrainOverrides {
    #[arg(long, help = profile_help("Most epochs; early stopping usually ends sooner", |s| s.fit.epochs.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub epochs: Option<usize>,
    #[arg(long, help = profile_help("Reviews per training batch", |s| s.fit.batch_size.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub batch_size: Option<usize>,
    #[arg(long, help = profile_help("Peak learning rate of the encoder", |s| s.fit.learning_rate.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub learning_rate: Option<f64>,
    #[arg(long, help = profile_help("The head's learning rate as a multiple of the encoder's", |s| s.fit.head_rate.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub head_rate: Option<f64>,
    #[arg(long, help = profile_help("Epochs without a better validation score before stopping", |s| s.fit.patience.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub patience: Option<usize>,
    #[arg(long, help = profile_help("Seed of weights, batches and dropout", |s| s.fit.seed.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub seed: Option<u64>,
    #[arg(long, help = profile_help("Keep the encoder's embeddings fixed (true/false)", |s| s.fit.frozen.embeddings.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub freeze_embeddings: Option<bool>,
    #[arg(long, help = profile_help("Keep the embeddings and the first N encoder layers fixed", |s| s.fit.frozen.layers.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub frozen_layers: Option<usize>,
    #[arg(long, help = profile_help("Vocabulary size of the tokenizer trained here (without a base)", |s| s.vocab_size.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub vocab_size: Option<usize>,
    #[arg(long, value_enum, help = profile_help("How the sentiment model reads review and keyword", |s| format!("{:?}", s.sentiment_input)))]
    #[serde(default, deserialize_with = "form_choice")]
    pub sentiment_input: Option<SentimentInput>,
    #[arg(long, help = profile_help("Dropout on the sentence vector", |s| s.dropout.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub dropout: Option<f32>,
    #[arg(long, help = profile_help("Share of tokens masked in each training batch (noise against memorising)", |s| s.fit.token_dropout.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub token_dropout: Option<f32>,
    #[arg(long, help = profile_help("AdamW weight decay", |s| s.fit.weight_decay.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub weight_decay: Option<f64>,
    #[arg(long, help = profile_help("Masked-language-model epochs over all reviews before fine-tuning the encoder trained here (`reviewloop pretrain` pre-trains a base)", |s| s.pretrain_epochs.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub pretrain_epochs: Option<usize>,
    #[arg(long, value_enum, help = profile_help("Sentence vector for the heads: mean over tokens or the first token", |s| format!("{:?}", s.pooling)))]
    #[serde(default, deserialize_with = "form_choice")]
    pub pooling: Option<Pooling>,
    #[arg(long, help = profile_help("Hashed character 1–3-gram features of the classifiers' lexical part (0: none)", |s| s.lexical_buckets().to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub lexical_buckets: Option<usize>,
    #[arg(long, help = profile_help("Step size of the lexical part's plain gradient steps at the peak learning rate", |s| s.fit.lexical_rate.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub lexical_rate: Option<f64>,
    #[arg(long, help = profile_help("Epochs of the lexical part's own stage, before the encoder's", |s| s.fit.lexical_epochs.to_string()))]
    #[serde(default, deserialize_with = "form_value")]
    pub lexical_epochs: Option<usize>,
}

impl TrainOverrides {
    /// Applies every option given, after checking it.
    pub fn apply(&self, s: &mut TrainSettings) -> anyhow::Result<()> {
        anyhow::ensure!(self.epochs.is_none_or(|e| (1..=1000).contains(&e)), "epochs must be 1–1000");
        anyhow::ensure!(self.batch_size.is_none_or(|b| (1..=1024).contains(&b)), "batch size must be 1–1024");
        anyhow::ensure!(
            self.learning_rate.is_none_or(|r| r > 0.0 && r < 1.0),
            "the learning rate must be between 0 and 1"
        );
        anyhow::ensure!(self.pretrain_epochs.is_none_or(|e| e <= 100), "pre-training epochs must be 0–100");
        let f = &mut s.fit;
        set(&mut f.epochs, self.epochs);
        set(&mut f.batch_size, self.batch_size);
        set(&mut f.learning_rate, self.learning_rate);
        set(&mut f.head_rate, self.head_rate);
        set(&mut f.patience, self.patience.map(|p| p.max(1)));
        set(&mut f.seed, self.seed);
        set(&mut f.token_dropout, self.token_dropout);
        set(&mut f.weight_decay, self.weight_decay);
        set(&mut f.lexical_rate, self.lexical_rate);
        set(&mut f.lexical_epochs, self.lexical_epochs);
        set(&mut f.frozen.embeddings, self.freeze_embeddings);
        set(&mut f.frozen.layers, self.frozen_layers);
        set(&mut s.vocab_size, self.vocab_size);
        set(&mut s.sentiment_input, self.sentiment_input);
        set(&mut s.dropout, self.dropout);
        set(&mut s.pretrain_epochs, self.pretrain_epochs);
        set(&mut s.pooling, self.pooling);
        if self.lexical_buckets.is_some() {
            s.lexical_buckets = self.lexical_buckets;
        }
        Ok(())
    }
}

fn set<T: Copy>(field: &mut T, given: Option<T>) {
    if let Some(value) = given {
        *field = value;
    }
}

/// `--help` text naming the default of both starts, read from the profiles themselves.
fn profile_help(what: &str, value: fn(&TrainSettings) -> String) -> String {
    let scratch = TrainSettings::defaults("", PathBuf::new());
    let base = TrainSettings::pretrained("", PathBuf::new(), SafeName::parse("base").expect("valid"));
    format!("{what} (default: {} from scratch, {} from a base)", value(&scratch), value(&base))
}

/// A form field (always a string): blank is "not given", anything else is parsed.
fn form_value<'de, D: Deserializer<'de>, T: FromStr>(d: D) -> Result<Option<T>, D::Error>
where
    T::Err: std::fmt::Display,
{
    let text = Option::<String>::deserialize(d)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// A form field naming one of clap's values (`mean`, `seed-prompt`, …).
fn form_choice<'de, D: Deserializer<'de>, T: ValueEnum>(d: D) -> Result<Option<T>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => T::from_str(t, true).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_and_the_command_line_set_the_same_fields() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            o: TrainOverrides,
        }
        let cli = Cli::parse_from(["t", "--epochs", "3", "--pooling", "first", "--learning-rate", "0.001"]).o;
        let form: TrainOverrides =
            serde_urlencoded::from_str("epochs=3&pooling=first&learning_rate=0.001&seed=").unwrap();
        let (mut a, mut b) =
            (TrainSettings::defaults("t", PathBuf::new()), TrainSettings::defaults("t", PathBuf::new()));
        cli.apply(&mut a).unwrap();
        form.apply(&mut b).unwrap();
        assert_eq!(serde_json::to_value(&a).unwrap(), serde_json::to_value(&b).unwrap());
        assert_eq!(
            (a.fit.epochs, a.pooling, a.fit.seed),
            (3, Pooling::First, 42),
            "a blank seed keeps the default"
        );
    }

    #[test]
    fn the_help_shows_the_profiles_own_defaults() {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            o: TrainOverrides,
        }
        let help = Cli::command().render_long_help().to_string();
        let scratch = TrainSettings::defaults("t", PathBuf::new());
        let base = TrainSettings::pretrained("t", PathBuf::new(), SafeName::parse("b").unwrap());
        let epochs =
            format!("(default: {} from scratch, {} from a base)", scratch.fit.epochs, base.fit.epochs);
        assert!(help.contains(&epochs), "{help}");
        let rate =
            format!("{} from scratch, {} from a base", scratch.fit.learning_rate, base.fit.learning_rate);
        assert!(help.contains(&rate), "{help}");
    }

    #[test]
    fn out_of_range_options_are_refused_by_both() {
        let mut s = TrainSettings::defaults("t", PathBuf::new());
        let bad = TrainOverrides { epochs: Some(0), ..Default::default() };
        assert!(bad.apply(&mut s).unwrap_err().to_string().contains("epochs"));
        let bad: TrainOverrides = serde_urlencoded::from_str("learning_rate=2").unwrap();
        assert!(bad.apply(&mut s).is_err());
    }

    #[test]
    fn the_base_profile_starts_from_the_scratch_profile() {
        let scratch = TrainSettings::defaults("t", PathBuf::new());
        let base = TrainSettings::pretrained("t", PathBuf::new(), SafeName::parse("b").unwrap());
        assert_eq!(
            (base.fit.batch_size, base.fit.seed, base.vocab_size),
            (scratch.fit.batch_size, scratch.fit.seed, scratch.vocab_size)
        );
        assert_ne!(base.fit.learning_rate, scratch.fit.learning_rate);
    }

    #[test]
    fn the_fast_mode_freezes_a_bases_encoder_but_its_top_layers() {
        let dir = tempfile::tempdir().unwrap();
        let mut scratch = TrainSettings::defaults("t", dir.path().to_path_buf());
        assert!(scratch.make_fast(0).unwrap_err().to_string().contains("--base"));
        let base_dir = crate::bases::root(dir.path()).join("tiny");
        std::fs::create_dir_all(&base_dir).unwrap();
        let fixture = crate::model::testing::fixture("tiny-roberta");
        std::fs::copy(fixture.join("config.json"), base_dir.join("config.json")).unwrap();
        let base = SafeName::parse("tiny").unwrap();
        let mut s = TrainSettings::pretrained("t", dir.path().to_path_buf(), base);
        s.make_fast(1).unwrap();
        assert_eq!(s.fit.frozen, crate::model::encoder::Frozen { embeddings: true, layers: 1 });
        s.make_fast(0).unwrap();
        assert_eq!(s.fit.frozen.layers, 2, "the tiny checkpoint has two layers");
        assert!(s.make_fast(2).unwrap_err().to_string().contains("2 layers"));
    }
}
