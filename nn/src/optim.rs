//! Optimisers: what a training step does with the gradients. [`Sgd`] is the book's, with each
//! program's way of regularising ([`Regularization`]); [`Momentum`] is chapter 3's
//! momentum-based gradient descent; [`Adam`] is past the book, and [`Averaged`] wraps any of
//! them to keep a moving average of the weights for evaluation. None needs a change to
//! [`Network`](crate::Network).

use crate::{NnError, Result};
use autograd::{GradientConsumer, Graph, LinearGradient, Taken, Var};
use tensor::Accum;
use tensor::Float;

/// How weights are regularised, as each of the book's programs does it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Regularization {
    /// None (network.py).
    None,
    /// network2.py: `w <- (1 - eta*lmbda/n) w - eta * grad`, `n` the training-set size.
    WeightDecay {
        /// lambda.
        lmbda: f64,
        /// Training-set size.
        n: usize,
    },
    /// network3.py: `0.5*lmbda*sum(w^2)/num_batches` added to the cost in the graph.
    InGraph {
        /// lambda.
        lmbda: f64,
        /// Number of mini-batches per epoch.
        num_batches: usize,
    },
    /// Chapter 3's L1 exercise: `(lmbda/n) sum |w|` added to the cost in the graph, so the
    /// step is `w <- w - (eta*lmbda/n) sgn(w) - eta * grad` (`sgn(0) = 0`).
    L1 {
        /// lambda.
        lmbda: f64,
        /// Training-set size.
        n: usize,
    },
}

impl Regularization {
    /// The factor network2's weight decay multiplies weights by before the step at `eta`
    /// (1 for the others, whose terms are in the graph).
    fn decay(self, eta: f64) -> f64 {
        match self {
            Regularization::WeightDecay { lmbda, n } => 1.0 - eta * lmbda / n.max(1) as f64,
            _ => 1.0,
        }
    }

    /// `lmbda/n` of network2's weight decay: its term's coefficient in the gradient (0 for
    /// the others).
    fn decay_gradient(self) -> f64 {
        match self {
            Regularization::WeightDecay { lmbda, n } => lmbda / n.max(1) as f64,
            _ => 0.0,
        }
    }

    /// `loss` plus the regularisation term of the in-graph kinds (network3's L2, L1).
    fn add_to<T: Float>(self, g: &mut Graph<T>, weights: &[Var], loss: Var) -> Result<Var> {
        let (coef, l1) = match self {
            Regularization::InGraph { lmbda, num_batches } => {
                (0.5 * lmbda / num_batches.max(1) as f64, false)
            }
            Regularization::L1 { lmbda, n } => (lmbda / n.max(1) as f64, true),
            _ => return Ok(loss),
        };
        if coef == 0.0 {
            return Ok(loss);
        }
        let mut total: Option<Var> = None;
        for &w in weights {
            let s = if l1 { g.sum_abs(w)? } else { g.sum_squares(w)? };
            total = Some(match total {
                Some(t) => g.add(t, s)?,
                None => s,
            });
        }
        let Some(t) = total else { return Ok(loss) };
        let term = g.scale(t, T::of(coef))?;
        Ok(g.add(loss, term)?)
    }
}

/// What an optimiser needs to continue a run exactly: its scalars (step counts) as JSON, and
/// its per-parameter buffers (velocities, moments, the weight average), which a checkpoint
/// stores as tensors beside the weights so that any size of network can be resumed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState<T> {
    /// Small settings and counters; `null` for an optimiser with none.
    pub scalars: serde_json::Value,
    /// Named buffers (`"adam.m.3"`: Adam's first moment of parameter 3); an empty buffer is
    /// one the optimiser has not needed yet.
    pub buffers: Vec<(String, Vec<T>)>,
}

impl<T: Float> OptimizerState<T> {
    /// The state as checkpoint format 1 kept it, all in JSON (`{"velocities": [[..]]}`,
    /// `{"m": [[..]], "v": [[..]], "t": n}`, `{"inner": .., "average": [[..]], "t": n}`, or
    /// `null`), in today's form, so that runs checkpointed before format 2 still resume.
    pub fn from_format1(json: &serde_json::Value) -> Result<Self> {
        use serde_json::{json, Value};
        let lists = |key: &str, prefix: &str, out: &mut Vec<(String, Vec<T>)>| -> Result<()> {
            let v: Vec<Vec<f64>> = serde_json::from_value(json[key].clone()).map_err(|e| {
                NnError::Config(format!("the saved optimiser state's {key:?}: {e}"))
            })?;
            for (k, b) in v.into_iter().enumerate() {
                out.push((format!("{prefix}.{k}"), b.into_iter().map(T::of).collect()));
            }
            Ok(())
        };
        let mut buffers = Vec::new();
        let scalars = if json.is_null() {
            Value::Null
        } else if json.get("average").is_some() {
            let inner = Self::from_format1(&json["inner"])?;
            buffers = inner.buffers;
            lists("average", "average", &mut buffers)?;
            json!({ "optimizer": "averaged", "inner": inner.scalars, "t": json["t"] })
        } else if json.get("velocities").is_some() {
            lists("velocities", "momentum.velocity", &mut buffers)?;
            json!({ "optimizer": "momentum" })
        } else if json.get("m").is_some() {
            lists("m", "adam.m", &mut buffers)?;
            lists("v", "adam.v", &mut buffers)?;
            json!({ "optimizer": "adam", "t": json["t"] })
        } else {
            return Err(NnError::Config(
                "the saved optimiser state is of no optimiser this nndl knows".into(),
            ));
        };
        Ok(OptimizerState { scalars, buffers })
    }
}

/// Fails unless `eta` is a positive number `T` holds.
fn check_eta<T: Float>(eta: f64) -> Result<()> {
    if !eta.is_finite() || eta <= 0.0 || !T::of(eta).is_finite() {
        return Err(NnError::Config(format!(
            "the learning rate must be a positive number the network's precision holds, got {eta}"
        )));
    }
    Ok(())
}

/// One step of training: optional terms in the cost, then the backward and the update.
///
/// [`Network::train_epoch`](crate::Network::train_epoch) calls [`begin_epoch`] once, then for
/// every mini-batch [`regularize`] on the recorded cost and [`step`] from what it returns.
///
/// [`begin_epoch`]: Optimizer::begin_epoch
/// [`regularize`]: Optimizer::regularize
/// [`step`]: Optimizer::step
pub trait Optimizer<T: Float> {
    /// The learning rate (named in the error when training diverges).
    fn learning_rate(&self) -> f64;
    /// Sets the learning rate (a schedule's change between epochs).
    fn set_learning_rate(&mut self, eta: f64);
    /// What a resumed run needs to continue exactly (momentum's velocities, Adam's moments);
    /// empty for an optimiser with no state.
    fn state(&self) -> OptimizerState<T> {
        OptimizerState::default()
    }
    /// Restores what [`Optimizer::state`] gave, for training `params` of `g` (the trained
    /// parameters, as [`Network::parameters`](crate::Network::parameters) lists them). Every
    /// buffer and count is checked against the network: a damaged or foreign state is an
    /// error, never silently reset.
    fn set_state(&mut self, state: OptimizerState<T>, g: &Graph<T>, params: &[Var]) -> Result<()> {
        let _ = (g, params);
        if state.buffers.is_empty() && state.scalars.is_null() {
            Ok(())
        } else {
            Err(NnError::Config(
                "this optimiser keeps no state, but the saved run has some: resume with the same optimiser".into(),
            ))
        }
    }
    /// Checks the settings and prepares per-parameter state before an epoch; `weights` are
    /// the regularised subset of `params`.
    fn begin_epoch(&mut self, params: &[Var], weights: &[Var]) -> Result<()>;
    /// The cost to differentiate: `loss` plus any term the optimiser puts in the graph.
    fn regularize(&mut self, _g: &mut Graph<T>, _weights: &[Var], loss: Var) -> Result<Var> {
        Ok(loss)
    }
    /// The backward from `loss` and one update of every parameter.
    fn step(&mut self, g: &mut Graph<T>, loss: Var, params: &[Var], weights: &[Var]) -> Result<()>;
    /// Exchanges the graph's parameters with the weights evaluation should use, if the
    /// optimiser keeps any ([`Averaged`]'s average); a second call swaps them back. Returns
    /// whether anything was swapped.
    fn swap_averaged(&mut self, _g: &mut Graph<T>) -> Result<bool> {
        Ok(false)
    }
}

/// Mini-batch stochastic gradient descent, `w <- decay*w - eta*grad`, as the book's three
/// programs do it (the decay is network2's weight decay, 1 otherwise).
#[derive(Debug, Clone)]
pub struct Sgd<T: Float> {
    /// The learning rate.
    pub eta: f64,
    /// How weights are regularised.
    pub reg: Regularization,
    /// Whether linear layers' weights are updated where the backward completes their
    /// gradient ([`autograd::Graph::backward_with`]: one pass over each weight matrix instead
    /// of five; on by default). The result is the same up to float rounding.
    pub fused: bool,
    /// Scratch of the fused update (`dY` transposed, the kernel's own), kept across steps.
    scratch: (Vec<T>, Vec<T>),
}

impl<T: Float> Sgd<T> {
    /// SGD at `eta` with `reg`, linear layers' weights updated inside the backward.
    pub fn new(eta: f64, reg: Regularization) -> Self {
        Sgd {
            eta,
            reg,
            fused: true,
            scratch: (Vec::new(), Vec::new()),
        }
    }

    /// The factor weights are multiplied by before the gradient step.
    fn decay(&self) -> T {
        T::of(self.reg.decay(self.eta))
    }

    /// The update after a backward, skipping parameters whose gradient the backward handed
    /// to the fused update: `w <- decay*w - eta*grad` for `weights`, `b <- b - eta*grad` for
    /// the other `params`.
    pub fn update(&self, g: &mut Graph<T>, params: &[Var], weights: &[Var]) -> Result<()> {
        let decay = self.decay();
        let eta = T::of(self.eta);
        for &p in params {
            let d = if weights.contains(&p) {
                decay
            } else {
                T::one()
            };
            if g.handed_over(p).is_some() {
                continue;
            }
            let (v, grad) = g.param_and_grad(p)?;
            match grad {
                Some(grad) => v
                    .data_mut()
                    .iter_mut()
                    .zip(grad.data())
                    .for_each(|(w, &gr)| *w = d * *w - eta * gr),
                None if d != T::one() => v.data_mut().iter_mut().for_each(|w| *w *= d),
                None => {}
            }
        }
        Ok(())
    }
}

/// SGD's update of a linear layer's weights in the backward's pass over them: `dX` with the
/// old weights and `w <- decay*w - eta*(dY^T X + c w)` in one sweep (the tensor crate's fused
/// kernel), for mini-batches the kernel takes; larger ones are declined and stored.
struct FusedSgd<'a, T> {
    eta: T,
    decay: T,
    weights: &'a [Var],
    scratch: &'a mut (Vec<T>, Vec<T>),
}

impl<T: Float> GradientConsumer<T> for FusedSgd<'_, T> {
    fn take_linear(&mut self, param: Var, grad: &mut LinearGradient<'_, T>) -> Option<Taken<T>> {
        let (m, k, n) = grad.dims();
        if m == 0 || m > T::linear_step_rows() {
            return None;
        }
        let decay = if self.weights.contains(&param) {
            self.decay
        } else {
            T::one()
        };
        // The `c w` term of an in-graph L2 cost, folded into the decay: the weights are not
        // read for it.
        let decay = decay - self.eta * grad.scaled_value();
        let (dyt, scratch) = &mut *self.scratch;
        let parts = grad.parts();
        dyt.resize(n * m, T::zero());
        for (i, row) in parts.dy.chunks_exact(n).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                dyt[j * m + i] = v;
            }
        }
        scratch.resize(T::linear_step_scratch(m, k, n), T::zero());
        let dx = parts.input_grad.map(|(d, mode)| {
            let keep = match mode {
                Accum::Overwrite => T::zero(),
                Accum::Add => T::one(),
            };
            (d, keep)
        });
        let (nonzero, sum_squares) = T::linear_step(
            m,
            k,
            n,
            parts.x,
            dyt,
            parts.value,
            self.eta,
            decay,
            dx,
            scratch,
        )?;
        Some(Taken {
            nonzero,
            sum_squares: Some(sum_squares),
        })
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn learning_rate(&self) -> f64 {
        self.eta
    }

    fn set_learning_rate(&mut self, eta: f64) {
        self.eta = eta;
    }

    fn begin_epoch(&mut self, _params: &[Var], _weights: &[Var]) -> Result<()> {
        check_eta::<T>(self.eta)
    }

    /// network3's `0.5*lmbda*sum(w^2)/num_batches` or L1's `(lmbda/n) sum |w|`.
    fn regularize(&mut self, g: &mut Graph<T>, weights: &[Var], loss: Var) -> Result<Var> {
        self.reg.add_to(g, weights, loss)
    }

    fn step(&mut self, g: &mut Graph<T>, loss: Var, params: &[Var], weights: &[Var]) -> Result<()> {
        if self.fused {
            let mut fused = FusedSgd {
                eta: T::of(self.eta),
                decay: self.decay(),
                weights,
                scratch: &mut self.scratch,
            };
            g.backward_with(loss, &mut fused)?;
        } else {
            g.backward(loss)?;
        }
        self.update(g, params, weights)
    }
}

/// Momentum-based gradient descent (chapter 3): each parameter keeps a velocity,
/// `v <- mu*v - eta*grad`, `w <- w + v`; `mu = 0` is plain SGD. Under network2's weight decay
/// the gradient includes `(lmbda/n) w`, as the decay is that term's step.
#[derive(Debug, Clone)]
pub struct Momentum<T: Float> {
    /// The learning rate.
    pub eta: f64,
    /// The momentum coefficient mu (the book's "friction" is `1 - mu`).
    pub mu: f64,
    /// How weights are regularised.
    pub reg: Regularization,
    velocities: Buffers<T>,
    /// Per parameter: whether weight decay applies to it.
    decayed: Vec<bool>,
}

impl<T: Float> Momentum<T> {
    /// Momentum SGD at `eta` with coefficient `mu` and `reg`, velocities starting at zero.
    pub fn new(eta: f64, mu: f64, reg: Regularization) -> Self {
        Momentum {
            eta,
            mu,
            reg,
            velocities: Buffers::default(),
            decayed: Vec::new(),
        }
    }
}

impl<T: Float> Optimizer<T> for Momentum<T> {
    fn learning_rate(&self) -> f64 {
        self.eta
    }

    fn set_learning_rate(&mut self, eta: f64) {
        self.eta = eta;
    }

    fn state(&self) -> OptimizerState<T> {
        let mut buffers = Vec::new();
        self.velocities.save("momentum.velocity", &mut buffers);
        OptimizerState {
            scalars: serde_json::json!({ "optimizer": "momentum" }),
            buffers,
        }
    }

    fn set_state(
        &mut self,
        mut state: OptimizerState<T>,
        g: &Graph<T>,
        params: &[Var],
    ) -> Result<()> {
        expect_kind(&state, "momentum")?;
        let sizes = sizes(g, params)?;
        self.velocities = Buffers::load(
            &mut state.buffers,
            "momentum.velocity",
            &sizes,
            "momentum's velocities",
        )?;
        no_more(&state)
    }

    fn begin_epoch(&mut self, params: &[Var], weights: &[Var]) -> Result<()> {
        check_eta::<T>(self.eta)?;
        if !(0.0..1.0).contains(&self.mu) {
            return Err(NnError::Config(format!(
                "the momentum coefficient must be in [0, 1), got {}",
                self.mu
            )));
        }
        self.decayed = params.iter().map(|p| weights.contains(p)).collect();
        self.velocities.begin(params.len());
        Ok(())
    }

    fn regularize(&mut self, g: &mut Graph<T>, weights: &[Var], loss: Var) -> Result<Var> {
        self.reg.add_to(g, weights, loss)
    }

    fn step(
        &mut self,
        g: &mut Graph<T>,
        loss: Var,
        params: &[Var],
        _weights: &[Var],
    ) -> Result<()> {
        g.backward(loss)?;
        let (eta, mu) = (T::of(self.eta), T::of(self.mu));
        let l2 = T::of(self.reg.decay_gradient());
        for (k, &p) in params.iter().enumerate() {
            let c = if self.decayed.get(k).copied().unwrap_or(false) {
                l2
            } else {
                T::zero()
            };
            let (w, grad) = g.param_and_grad(p)?;
            let v = self.velocities.get(k, w.numel())?;
            let w = w.data_mut();
            match grad {
                Some(gr) => {
                    for ((v, w), &d) in v.iter_mut().zip(w.iter_mut()).zip(gr.data()) {
                        *v = mu * *v - eta * (d + c * *w);
                        *w += *v;
                    }
                }
                None => {
                    for (v, w) in v.iter_mut().zip(w.iter_mut()) {
                        *v = mu * *v - eta * c * *w;
                        *w += *v;
                    }
                }
            }
        }
        Ok(())
    }
}

/// One buffer per parameter (momentum's velocities, Adam's moments), zero until first used,
/// saved in a checkpoint as tensors.
#[derive(Debug, Clone, Default)]
struct Buffers<T> {
    per_param: Vec<Vec<T>>,
}

impl<T: Float> Buffers<T> {
    /// Keeps the buffers if there is one per parameter (a resumed run's), else starts over.
    fn begin(&mut self, params: usize) {
        if self.per_param.len() != params {
            self.per_param = vec![Vec::new(); params];
        }
    }

    /// Parameter `k`'s buffer of `len` values, zero-filled on first use.
    fn get(&mut self, k: usize, len: usize) -> Result<&mut Vec<T>> {
        let b = &mut self.per_param[k];
        if b.len() != len {
            if !b.is_empty() {
                return Err(NnError::Config(format!(
                    "optimiser state: parameter {k} has {} values saved for {len}",
                    b.len()
                )));
            }
            b.resize(len, T::zero());
        }
        Ok(b)
    }

    /// Appends the buffers as `{prefix}.{k}`, one per parameter (empty ones too, so that a
    /// missing one is damage, not a fresh start).
    fn save(&self, prefix: &str, out: &mut Vec<(String, Vec<T>)>) {
        for (k, b) in self.per_param.iter().enumerate() {
            out.push((format!("{prefix}.{k}"), b.clone()));
        }
    }

    /// Takes the buffers `{prefix}.0 ..` out of `saved`: none (a run saved before its first
    /// step), or exactly one per size, each empty or of its parameter's size, all finite.
    fn load(
        saved: &mut Vec<(String, Vec<T>)>,
        prefix: &str,
        sizes: &[usize],
        what: &str,
    ) -> Result<Self> {
        let dot = format!("{prefix}.");
        let mut found: Vec<Option<Vec<T>>> = vec![None; sizes.len()];
        let mut count = 0;
        for (name, b) in std::mem::take(saved) {
            let Some(k) = name.strip_prefix(&dot) else {
                saved.push((name, b));
                continue;
            };
            let k = k
                .parse::<usize>()
                .ok()
                .filter(|&k| k < sizes.len() && found[k].is_none())
                .ok_or_else(|| {
                    NnError::Config(format!(
                        "{what}: unexpected buffer {name:?} for a network of {} parameters",
                        sizes.len()
                    ))
                })?;
            if !b.is_empty() && b.len() != sizes[k] {
                return Err(NnError::Config(format!(
                    "{what}: parameter {k} has {} values saved for {}",
                    b.len(),
                    sizes[k]
                )));
            }
            if b.iter().any(|v| !v.is_finite()) {
                return Err(NnError::Config(format!(
                    "{what}: parameter {k} holds a non-finite number"
                )));
            }
            found[k] = Some(b);
            count += 1;
        }
        if count == 0 {
            return Ok(Buffers::default());
        }
        if count != sizes.len() {
            return Err(NnError::Config(format!(
                "{what}: {count} buffers saved for {} parameters",
                sizes.len()
            )));
        }
        Ok(Buffers {
            per_param: found.into_iter().flatten().collect(),
        })
    }

    /// Whether every buffer is full (none left to start at zero).
    fn all_full(&self, sizes: &[usize]) -> bool {
        self.per_param.len() == sizes.len()
            && self.per_param.iter().zip(sizes).all(|(b, &n)| b.len() == n)
    }
}

/// The number of values of each of `params`.
fn sizes<T: Float>(g: &Graph<T>, params: &[Var]) -> Result<Vec<usize>> {
    params.iter().map(|&p| Ok(g.value(p)?.numel())).collect()
}

/// Fails unless `state` was saved by the optimiser `kind`.
fn expect_kind<T>(state: &OptimizerState<T>, kind: &str) -> Result<()> {
    match state.scalars["optimizer"].as_str() {
        Some(k) if k == kind => Ok(()),
        other => Err(NnError::Config(format!(
            "the saved optimiser state is {}'s, not {kind}'s: resume with the same optimiser",
            other.map_or("another optimiser".to_string(), |k| format!("{k:?}"))
        ))),
    }
}

/// Fails if buffers are left that no part of the optimiser took.
fn no_more<T>(state: &OptimizerState<T>) -> Result<()> {
    match state.buffers.first() {
        None => Ok(()),
        Some((name, _)) => Err(NnError::Config(format!(
            "the saved optimiser state has a buffer {name:?} this optimiser does not keep"
        ))),
    }
}

/// The step count `t` of a saved optimiser state (`whose` names it in the error).
fn step_count(scalars: &serde_json::Value, whose: &str) -> Result<u64> {
    scalars["t"].as_u64().ok_or_else(|| {
        NnError::Config(format!(
            "{whose} step count is missing or not a whole number"
        ))
    })
}

/// Adam (Kingma and Ba, 2015) as PyTorch's `Adam`/`AdamW`: per parameter the moving averages
/// `m <- b1 m + (1-b1) g` and `v <- b2 v + (1-b2) g^2`, and the step
/// `w <- w - eta (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`. Weight decay applies to the
/// weights (not the biases): added to the gradient (`Adam`'s L2) or, `decoupled`, as
/// `w <- w - eta wd w` before the step (`AdamW`).
#[derive(Debug, Clone)]
pub struct Adam<T: Float> {
    /// The learning rate.
    pub eta: f64,
    /// Decay of the first moment's average.
    pub beta1: f64,
    /// Decay of the second moment's average.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Weight decay of the weights.
    pub weight_decay: f64,
    /// Decoupled weight decay (AdamW) rather than L2 in the gradient.
    pub decoupled: bool,
    m: Buffers<T>,
    v: Buffers<T>,
    /// Steps taken.
    t: u64,
    decayed: Vec<bool>,
}

impl<T: Float> Adam<T> {
    /// Adam at `eta` with PyTorch's defaults (betas 0.9 and 0.999, eps 1e-8, no weight decay).
    pub fn new(eta: f64) -> Self {
        Adam {
            eta,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            m: Buffers::default(),
            v: Buffers::default(),
            t: 0,
            decayed: Vec::new(),
        }
    }

    /// AdamW: Adam with decoupled weight decay `wd` of the weights.
    pub fn adamw(eta: f64, wd: f64) -> Self {
        Adam {
            weight_decay: wd,
            decoupled: true,
            ..Adam::new(eta)
        }
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn learning_rate(&self) -> f64 {
        self.eta
    }

    fn set_learning_rate(&mut self, eta: f64) {
        self.eta = eta;
    }

    fn state(&self) -> OptimizerState<T> {
        let mut buffers = Vec::new();
        self.m.save("adam.m", &mut buffers);
        self.v.save("adam.v", &mut buffers);
        OptimizerState {
            scalars: serde_json::json!({ "optimizer": "adam", "t": self.t }),
            buffers,
        }
    }

    fn set_state(
        &mut self,
        mut state: OptimizerState<T>,
        g: &Graph<T>,
        params: &[Var],
    ) -> Result<()> {
        expect_kind(&state, "adam")?;
        let sizes = sizes(g, params)?;
        let m = Buffers::load(&mut state.buffers, "adam.m", &sizes, "Adam's first moments")?;
        let v = Buffers::load(
            &mut state.buffers,
            "adam.v",
            &sizes,
            "Adam's second moments",
        )?;
        let t = step_count(&state.scalars, "Adam's")?;
        no_more(&state)?;
        // Both moments start at a parameter's first gradient, and the second is a mean of
        // squares; a state where they disagree was not written by a step.
        let pairs_agree = m.per_param.len() == v.per_param.len()
            && m.per_param
                .iter()
                .zip(&v.per_param)
                .all(|(a, b)| a.len() == b.len());
        let steps_agree = (t == 0) == m.per_param.iter().all(Vec::is_empty);
        if !pairs_agree || !steps_agree || v.per_param.iter().flatten().any(|&x| x < T::zero()) {
            return Err(NnError::Config(format!(
                "Adam's saved moments do not belong together (step count {t}): the state is damaged"
            )));
        }
        (self.m, self.v, self.t) = (m, v, t);
        Ok(())
    }

    fn begin_epoch(&mut self, params: &[Var], weights: &[Var]) -> Result<()> {
        check_eta::<T>(self.eta)?;
        let unit = |x: f64| (0.0..1.0).contains(&x);
        let ok = unit(self.beta1)
            && unit(self.beta2)
            && self.eps > 0.0
            && self.eps.is_finite()
            && (0.0..f64::INFINITY).contains(&self.weight_decay);
        if !ok {
            return Err(NnError::Config(format!(
                "Adam needs betas in [0, 1), eps > 0 and weight decay >= 0, got {}, {}, {}, {}",
                self.beta1, self.beta2, self.eps, self.weight_decay
            )));
        }
        self.decayed = params.iter().map(|p| weights.contains(p)).collect();
        self.m.begin(params.len());
        self.v.begin(params.len());
        Ok(())
    }

    fn step(
        &mut self,
        g: &mut Graph<T>,
        loss: Var,
        params: &[Var],
        _weights: &[Var],
    ) -> Result<()> {
        g.backward(loss)?;
        self.t += 1;
        let t = self.t.min(i32::MAX as u64) as i32;
        let (b1, b2) = (T::of(self.beta1), T::of(self.beta2));
        let (c1, c2) = (1.0 - self.beta1.powi(t), 1.0 - self.beta2.powi(t));
        let (step, root_c2) = (T::of(self.eta / c1), T::of(c2.sqrt()));
        let eps = T::of(self.eps);
        for (k, &p) in params.iter().enumerate() {
            let wd = if self.decayed.get(k).copied().unwrap_or(false) {
                T::of(self.weight_decay)
            } else {
                T::zero()
            };
            let (w, grad) = g.param_and_grad(p)?;
            // A parameter the loss does not reach is left alone, as PyTorch does.
            let Some(grad) = grad else { continue };
            let n = w.numel();
            let (m, v) = (self.m.get(k, n)?, self.v.get(k, n)?);
            let shrink = T::one() - T::of(self.eta) * wd;
            for (((w, &d), m), v) in w.data_mut().iter_mut().zip(grad.data()).zip(m).zip(v) {
                let d = if self.decoupled { d } else { d + wd * *w };
                *m = b1 * *m + (T::one() - b1) * d;
                *v = b2 * *v + (T::one() - b2) * d * d;
                if self.decoupled {
                    *w *= shrink;
                }
                *w -= step * *m / ((*v).sqrt() / root_c2 + eps);
            }
        }
        Ok(())
    }
}

/// Another optimiser's steps, plus an exponential moving average of every parameter for
/// evaluation (Polyak averaging, as timm's `ModelEmaV2` or PyTorch's `AveragedModel` with an
/// EMA): after each step `a <- d a + (1-d) w` with `d = min(decay, (1+t)/(10+t))`, `t` the
/// steps before it, so that early on the average follows the weights rather than their
/// random start. Batch norm's running statistics (frozen parameters) are averaged alike, so the
/// average is a whole network. [`Optimizer::swap_averaged`] puts it in the graph to evaluate
/// or save, and back out to train on.
pub struct Averaged<T: Float> {
    /// The optimiser whose weights are averaged.
    pub inner: Box<dyn Optimizer<T>>,
    /// The average's decay per step (0.999: a horizon of some thousand steps).
    pub decay: f64,
    average: Buffers<T>,
    /// Steps averaged.
    t: u64,
    /// Whether the graph holds the average now (between two swaps).
    swapped: bool,
}

impl<T: Float> Averaged<T> {
    /// `inner`'s steps with an average decaying by `decay` per step.
    pub fn new(inner: Box<dyn Optimizer<T>>, decay: f64) -> Self {
        Averaged {
            inner,
            decay,
            average: Buffers::default(),
            t: 0,
            swapped: false,
        }
    }
}

impl<T: Float> Optimizer<T> for Averaged<T> {
    fn learning_rate(&self) -> f64 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, eta: f64) {
        self.inner.set_learning_rate(eta);
    }

    fn state(&self) -> OptimizerState<T> {
        let inner = self.inner.state();
        let mut buffers = inner.buffers;
        self.average.save("average", &mut buffers);
        OptimizerState {
            scalars: serde_json::json!({ "optimizer": "averaged", "inner": inner.scalars, "t": self.t }),
            buffers,
        }
    }

    fn set_state(
        &mut self,
        mut state: OptimizerState<T>,
        g: &Graph<T>,
        params: &[Var],
    ) -> Result<()> {
        expect_kind(&state, "averaged")?;
        // The average covers every parameter of the graph, frozen statistics included.
        let all: Vec<Var> = g.parameters().collect();
        let sizes = sizes(g, &all)?;
        let average = Buffers::load(&mut state.buffers, "average", &sizes, "the weight average")?;
        let t = step_count(&state.scalars, "the weight average's")?;
        if (t > 0) != average.all_full(&sizes) {
            return Err(NnError::Config(format!(
                "the weight average after {t} steps holds {} of {} parameters: the state is damaged",
                average.per_param.iter().filter(|b| !b.is_empty()).count(),
                sizes.len()
            )));
        }
        let inner = OptimizerState {
            scalars: state.scalars["inner"].clone(),
            buffers: state.buffers,
        };
        self.inner.set_state(inner, g, params)?;
        (self.average, self.t) = (average, t);
        Ok(())
    }

    fn begin_epoch(&mut self, params: &[Var], weights: &[Var]) -> Result<()> {
        if !(0.0..1.0).contains(&self.decay) {
            return Err(NnError::Config(format!(
                "the weight average's decay must be in [0, 1), got {}",
                self.decay
            )));
        }
        if self.swapped {
            return Err(NnError::Config(
                "training with the weight average swapped in: swap it back first".into(),
            ));
        }
        self.inner.begin_epoch(params, weights)
    }

    fn regularize(&mut self, g: &mut Graph<T>, weights: &[Var], loss: Var) -> Result<Var> {
        self.inner.regularize(g, weights, loss)
    }

    fn step(&mut self, g: &mut Graph<T>, loss: Var, params: &[Var], weights: &[Var]) -> Result<()> {
        self.inner.step(g, loss, params, weights)?;
        let d = self.decay.min((1 + self.t) as f64 / (10 + self.t) as f64);
        let (d, rest) = (T::of(d), T::of(1.0 - d));
        let all: Vec<Var> = g.parameters().collect();
        self.average.begin(all.len());
        for (k, p) in all.into_iter().enumerate() {
            let w = g.value(p)?.data();
            let a = &mut self.average.per_param[k];
            if a.is_empty() {
                // A fresh average starts at the weights: the first step's average is them.
                a.extend_from_slice(w);
            } else if a.len() != w.len() {
                return Err(NnError::Config(format!(
                    "the weight average: parameter {k} has {} values saved for {}",
                    a.len(),
                    w.len()
                )));
            }
            for (a, &w) in a.iter_mut().zip(w) {
                *a = d * *a + rest * w;
            }
        }
        self.t += 1;
        Ok(())
    }

    fn swap_averaged(&mut self, g: &mut Graph<T>) -> Result<bool> {
        if self.t == 0 {
            return Ok(false);
        }
        let all: Vec<Var> = g.parameters().collect();
        if all.len() != self.average.per_param.len() {
            return Err(NnError::Config(format!(
                "the weight average holds {} parameters, the network {}",
                self.average.per_param.len(),
                all.len()
            )));
        }
        // Checked whole before anything moves: a failed swap leaves both sides as they were.
        for (&p, a) in all.iter().zip(&self.average.per_param) {
            let n = g.value(p)?.numel();
            if n != a.len() {
                return Err(NnError::Config(format!(
                    "the weight average has {} values for a parameter of {n}",
                    a.len()
                )));
            }
        }
        for (p, a) in all.into_iter().zip(&mut self.average.per_param) {
            g.param_mut(p)?.data_mut().swap_with_slice(a);
        }
        self.swapped = !self.swapped;
        Ok(true)
    }
}
