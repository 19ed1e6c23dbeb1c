//! AdamW updating each parameter in place, in one pass, on the CPU.
//!
//! candle's AdamW builds each update from about ten tensor operations, every one a new
//! allocation the size of the parameter: for the word embeddings that is ten fresh
//! buffers of vocabulary × hidden floats per step. This optimiser does the same
//! arithmetic (decoupled weight decay, bias-corrected moments) element by element,
//! with the moments kept on the host. On other devices it hands over to candle's.

use candle_core::{backprop::GradStore, CpuStorage, InplaceOp2, Layout, Result, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap, SGD};

use crate::model::encoder::Frozen;
use crate::model::fused::Shared;

/// The classifier head's variables.
const HEAD: &str = "classifier.";

pub enum FusedAdamW {
    Cpu { vars: Vec<Moments>, params: ParamsAdamW, step: i32 },
    Other(AdamW),
}

pub struct Moments {
    var: Var,
    first: std::sync::Mutex<Vec<f32>>,
    second: std::sync::Mutex<Vec<f32>>,
}

/// The step count and each tensor's first and second moments, for a checkpoint.
pub type SavedMoments = (i32, Vec<(Vec<f32>, Vec<f32>)>);

impl FusedAdamW {
    pub fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let vars: Vec<Var> = vars.into_iter().filter(|v| v.dtype().is_float()).collect();
        if !vars.iter().all(|v| crate::model::fused::applies(v.as_tensor())) {
            return Ok(FusedAdamW::Other(AdamW::new(vars, params)?));
        }
        let vars = vars
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                Moments { var, first: vec![0.0; n].into(), second: vec![0.0; n].into() }
            })
            .collect();
        Ok(FusedAdamW::Cpu { vars, params, step: 0 })
    }

    /// Steps taken and each variable's first and second moments, in the order the
    /// variables were given: what a checkpoint needs to resume exactly. None on other
    /// devices, whose optimiser keeps them out of reach (a resumed run starts them anew).
    pub fn moments(&self) -> Option<SavedMoments> {
        let FusedAdamW::Cpu { vars, step, .. } = self else { return None };
        let copy = |m: &std::sync::Mutex<Vec<f32>>| m.lock().expect("moments").clone();
        Some((*step, vars.iter().map(|m| (copy(&m.first), copy(&m.second))).collect()))
    }

    /// Puts back what [`FusedAdamW::moments`] returned, for the same variables in the
    /// same order.
    pub fn restore(&mut self, saved_step: i32, saved: Vec<(Vec<f32>, Vec<f32>)>) -> Result<()> {
        let FusedAdamW::Cpu { vars, step, .. } = self else { return Ok(()) };
        if saved.len() != vars.len() {
            candle_core::bail!(
                "the checkpoint has moments for {} variables, not {}",
                saved.len(),
                vars.len()
            );
        }
        for (m, (first, second)) in vars.iter().zip(saved) {
            if first.len() != m.var.elem_count() || second.len() != m.var.elem_count() {
                candle_core::bail!("the checkpoint's moments do not fit the variables");
            }
            *m.first.lock().expect("moments") = first;
            *m.second.lock().expect("moments") = second;
        }
        *step = saved_step;
        Ok(())
    }
}

impl Optimizer for FusedAdamW {
    type Config = ParamsAdamW;

    fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        FusedAdamW::new(vars, params)
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let FusedAdamW::Cpu { vars, params, step } = self else {
            let FusedAdamW::Other(inner) = self else { unreachable!() };
            return inner.step(grads);
        };
        *step += 1;
        let update = Update {
            params: params.clone(),
            scale_m: 1.0 / (1.0 - params.beta1.powi(*step)),
            scale_v: 1.0 / (1.0 - params.beta2.powi(*step)),
        };
        for moments in vars.iter() {
            if let Some(grad) = grads.get(moments.var.as_tensor()) {
                moments
                    .var
                    .as_tensor()
                    .inplace_op2(&grad.contiguous()?, &Apply { update: &update, moments })?;
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        match self {
            FusedAdamW::Cpu { params, .. } => params.lr,
            FusedAdamW::Other(inner) => inner.learning_rate(),
        }
    }

    fn set_learning_rate(&mut self, lr: f64) {
        match self {
            FusedAdamW::Cpu { params, .. } => params.lr = lr,
            FusedAdamW::Other(inner) => inner.set_learning_rate(lr),
        }
    }
}

struct Update {
    params: ParamsAdamW,
    scale_m: f64,
    scale_v: f64,
}

struct Apply<'a> {
    update: &'a Update,
    moments: &'a Moments,
}

/// Elements per parallel chunk: large enough that small tensors stay on one thread.
const CHUNK: usize = 1 << 16;

impl InplaceOp2 for Apply<'_> {
    fn name(&self) -> &'static str {
        "adamw-in-place"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let (CpuStorage::F32(theta), CpuStorage::F32(grad)) = (s1, s2) else {
            candle_core::bail!("in-place AdamW takes f32 parameters")
        };
        let (Some((a, b)), Some((c, d))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("in-place AdamW takes contiguous tensors")
        };
        let (theta, grad) = (&mut theta[a..b], &grad[c..d]);
        let (mut first, mut second) =
            (self.moments.first.lock().expect("moments"), self.moments.second.lock().expect("moments"));
        let p = &self.update.params;
        let (b1, b2, eps) = (p.beta1 as f32, p.beta2 as f32, p.eps as f32);
        let (lr, decay) = (p.lr as f32, (1.0 - p.lr * p.weight_decay) as f32);
        let (scale_m, scale_v) = (self.update.scale_m as f32, self.update.scale_v as f32);
        let (first, second) = (Shared::new(&mut first), Shared::new(&mut second));
        crate::model::fused::for_rows(theta, CHUNK, |chunk, theta| {
            let start = chunk * CHUNK;
            // Safety: the moments have the parameter's length and chunks do not overlap.
            let (first, second) =
                unsafe { (first.part(start, theta.len()), second.part(start, theta.len())) };
            for (((t, g), m), v) in theta.iter_mut().zip(&grad[start..]).zip(first).zip(second) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *t = *t * decay - lr * (*m * scale_m) / ((*v * scale_v).sqrt() + eps);
            }
        });
        Ok(())
    }
}

/// A classifier's optimiser: AdamW for the encoder and head, plain gradient steps for
/// the lexical part. Adam gives every weight about the same step whatever its gradient,
/// so an n-gram seen in one review moves as far as one seen in a thousand and the table
/// memorises the training set within a few epochs (on NIKL, in a first version over word
/// pieces, the keyword model's training loss reached 0.004 by epoch 13). Plain
/// steps move each weight in proportion to how much it helps, like a logistic
/// regression, and shrink as the training reviews are fitted.
pub struct ClassifierOptimiser {
    adam: FusedAdamW,
    /// The head (`classifier.*`), at `head_rate` times the encoder's learning rate: a
    /// head starting from zero on a pretrained encoder needs far larger steps than the
    /// encoder, which should move little.
    head: FusedAdamW,
    head_rate: f64,
    /// The lexical part's table and bias, each with its step size relative to
    /// `lexical_rate`.
    lexical: Vec<(SGD, f64)>,
    /// The lexical step size at the peak learning rate.
    lexical_rate: f64,
    peak: f64,
}

/// The lexical bias's step size relative to the table's. The bias is a feature every
/// review has with value 1, where a character n-gram has about 0.1 (a review has some
/// hundred of them and its vector has length 1); at the table's rate one step moved
/// it about a hundred times as far as a common n-gram, and it swung from batch to
/// batch. This is liblinear's `intercept_scaling` at 0.1.
const LEXICAL_BIAS_RATE: f64 = 0.01;

/// What a classifier's optimiser updates, and how fast.
pub struct Rates {
    pub params: ParamsAdamW,
    /// The lexical step size at the peak learning rate.
    pub lexical: f64,
    /// The head's learning rate as a multiple of the encoder's.
    pub head: f64,
    /// The encoder's variables (under `prefix`) that stay fixed.
    pub frozen: Frozen,
    pub prefix: &'static str,
}

impl ClassifierOptimiser {
    pub fn new(varmap: &VarMap, rates: Rates) -> Result<Self> {
        let Rates { params, lexical: lexical_rate, head: head_rate, frozen, prefix } = rates;
        let data = varmap.data().lock().expect("varmap lock");
        let vars = |keep: &dyn Fn(&str) -> bool| -> Vec<Var> {
            data.iter().filter(|(name, _)| keep(name)).map(|(_, v)| v.clone()).collect()
        };
        let mut lexical = Vec::new();
        for (name, rate) in [("lexical.weight", 1.0), ("lexical.bias", LEXICAL_BIAS_RATE)] {
            let part = vars(&|n| n == name);
            if !part.is_empty() {
                lexical.push((SGD::new(part, lexical_rate * rate)?, rate));
            }
        }
        // Adam takes the rest but what is frozen; the lexical part's `idf` is counted,
        // not learnt.
        let encoder =
            |n: &str| !n.starts_with("lexical.") && !n.starts_with(HEAD) && !frozen.holds(prefix, n);
        let adam = FusedAdamW::new(vars(&encoder), params.clone())?;
        let head_params = ParamsAdamW { lr: params.lr * head_rate, ..params.clone() };
        let head = FusedAdamW::new(vars(&|n| n.starts_with(HEAD)), head_params)?;
        Ok(ClassifierOptimiser { adam, head, head_rate, lexical, lexical_rate, peak: params.lr })
    }

    /// Follows the schedule: the head's and the lexical steps scale with the encoder's
    /// learning rate.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.adam.set_learning_rate(lr);
        self.head.set_learning_rate(lr * self.head_rate);
        let scale = self.lexical_rate * lr / self.peak.max(f64::MIN_POSITIVE);
        for (sgd, rate) in &mut self.lexical {
            sgd.set_learning_rate(scale * *rate);
        }
    }

    pub fn backward_step(&mut self, loss: &Tensor, parts: Parts) -> Result<()> {
        let grads = loss.backward()?;
        if parts != Parts::Lexical {
            self.adam.step(&grads)?;
            self.head.step(&grads)?;
        }
        if parts != Parts::Encoder {
            for (sgd, _) in &mut self.lexical {
                sgd.step(&grads)?;
            }
        }
        Ok(())
    }
}

/// Which parameters a training run updates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Parts {
    #[default]
    All,
    /// The lexical part alone (encoder and head stay as they are).
    Lexical,
    /// Everything but the lexical part.
    Encoder,
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::*;

    /// Three steps on a small quadratic: the same parameters as candle's AdamW.
    #[test]
    fn in_place_adamw_matches_candle() {
        let run = |fused: bool| -> Vec<f32> {
            let w = Var::from_vec((0..300).map(|i| (i as f32 * 0.1).sin()).collect(), (3, 100), &Device::Cpu)
                .unwrap();
            let params = ParamsAdamW { lr: 0.01, weight_decay: 0.1, ..Default::default() };
            let mut opt: Box<dyn FnMut(&Tensor)> = if fused {
                let mut o = FusedAdamW::new(vec![w.clone()], params).unwrap();
                Box::new(move |loss| o.backward_step(loss).unwrap())
            } else {
                let mut o = AdamW::new(vec![w.clone()], params).unwrap();
                Box::new(move |loss| o.backward_step(loss).unwrap())
            };
            for _ in 0..3 {
                let loss = ((w.as_tensor() - 0.3).unwrap().sqr().unwrap().sum_all()).unwrap();
                opt(&loss);
            }
            w.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
        };
        let (ours, theirs) = (run(true), run(false));
        let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-6, "largest difference {worst}");
        assert!(ours.iter().zip((0..300).map(|i| (i as f32 * 0.1).sin())).any(|(a, b)| a != &b));
    }
}
