//! A sequential network with a cost, trained by mini-batch SGD.

use crate::layers::{ConvPool, FullyConnected};
use crate::{Activation, Ctx, Init, Layer, Mode, NnError, PoolGrad, Result, Samples};
use autograd::{Graph, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::time::Instant;
use tensor::Float;

/// The book's three costs. Each takes the last layer's pre-activation `z` and applies the
/// output nonlinearity itself, fused where that is stable and cheaper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// network.py: sigmoid output, `0.5 ||a - y||^2` against one-hot targets.
    Quadratic,
    /// network2.py: sigmoid output, cross-entropy against one-hot targets (gradient `a - y`).
    CrossEntropy,
    /// network3.py: softmax output, `-log p[y]` (gradient `p - y`).
    LogLikelihood,
}

impl Cost {
    /// The class name network2.py's JSON files use.
    pub fn network2_name(self) -> &'static str {
        match self {
            Cost::Quadratic => "QuadraticCost",
            Cost::CrossEntropy => "CrossEntropyCost",
            Cost::LogLikelihood => "LogLikelihoodCost",
        }
    }

    /// Parses network2's class name.
    pub fn from_network2_name(s: &str) -> Option<Self> {
        Some(match s {
            "QuadraticCost" => Cost::Quadratic,
            "CrossEntropyCost" => Cost::CrossEntropy,
            "LogLikelihoodCost" => Cost::LogLikelihood,
            _ => return None,
        })
    }

    /// The mean cost of the mini-batch on the graph.
    pub fn loss<T: Float>(self, g: &mut Graph<T>, z: Var, labels: &[usize]) -> Result<Var> {
        if self == Cost::LogLikelihood {
            return Ok(g.softmax_cross_entropy(z, labels)?);
        }
        let s = g.value(z)?.shape();
        let classes = s.dims().get(1).copied().unwrap_or(0);
        if s.ndim() != 2 {
            return Err(NnError::Config(format!(
                "the cost needs [batch, classes] outputs, got {s}"
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
            return Err(NnError::Config(format!(
                "label {bad} does not fit the network's {classes} outputs"
            )));
        }
        let y = g.input_with(s.dims(), |d| {
            d.iter_mut().for_each(|v| *v = T::zero());
            for (r, &l) in labels.iter().enumerate() {
                d[r * classes + l] = T::one();
            }
        })?;
        Ok(match self {
            Cost::Quadratic => {
                let a = g.sigmoid(z)?;
                g.quadratic_cost(a, y)?
            }
            _ => g.sigmoid_cross_entropy(z, y)?,
        })
    }
}

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
}

/// Timing of one training epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// Wall seconds of the epoch's training (no evaluation).
    pub seconds: f64,
    /// Images trained on.
    pub images: usize,
    /// Mean mini-batch cost over the epoch.
    pub mean_cost: f64,
}

/// Accuracy and cost of a network on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Correctly classified samples.
    pub correct: usize,
    /// Samples in all.
    pub total: usize,
    /// Mean cost (plus network2's L2 term when asked for).
    pub cost: f64,
}

impl Evaluation {
    /// `correct / total`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total.max(1) as f64
    }
}

/// How often (in mini-batches) [`Network::train_epoch`] scans every parameter for NaN or
/// infinity: a scan costs about a tenth of an SGD update, so this keeps it under 1%.
const SCAN_EVERY: usize = 16;

/// The most parameters a network may hold: 2^28 (1 GiB as f32), over 150 times the book's
/// largest net. A bigger `--layers` description or model file is refused before anything is
/// allocated, rather than aborting the process when the allocation fails.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// A sequence of layers and a cost, with its parameters on one graph.
pub struct Network<T: Float> {
    graph: Graph<T>,
    layers: Vec<Box<dyn Layer<T>>>,
    input_dims: Vec<usize>,
    dims: Vec<usize>,
    cost: Cost,
    rng: rand_pcg::Pcg64,
    order: Vec<usize>,
    labels: Vec<usize>,
    fused_step: bool,
    decays: Vec<T>,
}

impl<T: Float> Network<T> {
    /// An empty network taking samples of `input_dims` (e.g. `[784]` or `[1, 28, 28]`).
    /// `seed` drives initialisation, shuffling and dropout.
    pub fn new(input_dims: &[usize], cost: Cost, seed: u64) -> Self {
        Network {
            graph: Graph::new(),
            layers: Vec::new(),
            input_dims: input_dims.to_vec(),
            dims: input_dims.to_vec(),
            cost,
            rng: rand_pcg::Pcg64::seed_from_u64(seed),
            order: Vec::new(),
            labels: Vec::new(),
            fused_step: true,
            decays: Vec::new(),
        }
    }

    /// The book's `Network(sizes)`: fully connected sigmoid layers, the last one's sigmoid
    /// applied by the cost.
    pub fn sigmoid_mlp(sizes: &[usize], cost: Cost, init: Init, seed: u64) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(NnError::Config(format!(
                "a network needs at least an input and an output size, got {sizes:?}"
            )));
        }
        let mut net = Network::new(&sizes[..1], cost, seed);
        for (i, &n) in sizes[1..].iter().enumerate() {
            let act = if i + 2 == sizes.len() {
                Activation::Identity
            } else {
                Activation::Sigmoid
            };
            net.add_fc(n, act, init, 0.0)?;
        }
        Ok(net)
    }

    /// Appends a layer after checking it accepts the previous layer's output.
    pub fn push(&mut self, layer: Box<dyn Layer<T>>) -> Result<&mut Self> {
        let out = layer
            .output_dims(&self.dims)
            .map_err(|e| NnError::Config(format!("layer {}: {e}", self.layers.len())))?;
        self.dims = out;
        self.layers.push(layer);
        Ok(self)
    }

    /// Appends a fully connected layer taking the current output.
    pub fn add_fc(
        &mut self,
        n_out: usize,
        act: Activation,
        init: Init,
        p_dropout: f64,
    ) -> Result<&mut Self> {
        let n_in = self.dims.iter().product::<usize>();
        let name = format!("l{}", self.layers.len());
        let size = n_in.checked_mul(n_out).and_then(|w| w.checked_add(n_out));
        self.check_size(&format!("a {n_in} -> {n_out} layer"), size)?;
        let l = FullyConnected::new(
            &mut self.graph,
            &name,
            n_in,
            n_out,
            act,
            init,
            p_dropout,
            &mut self.rng,
        )?;
        self.push(Box::new(l))
    }

    /// Appends a conv-pool layer of `n_filters` `kh x kw` filters over the current channels.
    pub fn add_conv_pool(
        &mut self,
        n_filters: usize,
        kh: usize,
        kw: usize,
        pool: usize,
        act: Activation,
    ) -> Result<&mut Self> {
        self.add_conv_pool_with(n_filters, kh, kw, pool, act, PoolGrad::First)
    }

    /// [`add_conv_pool`](Self::add_conv_pool) with the pool's gradient at ties chosen
    /// ([`PoolGrad::Ties`] is what network3.py's Theano computes).
    pub fn add_conv_pool_with(
        &mut self,
        n_filters: usize,
        kh: usize,
        kw: usize,
        pool: usize,
        act: Activation,
        pool_grad: PoolGrad,
    ) -> Result<&mut Self> {
        if pool_grad == PoolGrad::Ties && pool > tensor::pool::MAX_TIES_POOL {
            return Err(NnError::Config(format!(
                "the tie-splitting pool gradient takes pools up to {}, not {pool}",
                tensor::pool::MAX_TIES_POOL
            )));
        }
        // Only images feed a conv layer: a flat output (a fully connected layer's) is refused
        // rather than silently viewed as a square image.
        let channels = match self.dims.len() {
            3 => self.dims[0],
            _ => return Err(NnError::Config(format!("a conv-pool layer needs [channels, height, width] input, not the output of shape {:?}", self.dims))),
        };
        let name = format!("l{}", self.layers.len());
        let size = [channels, kh, kw]
            .iter()
            .try_fold(n_filters, |n, &d| n.checked_mul(d))
            .and_then(|w| w.checked_add(n_filters));
        self.check_size(
            &format!("{n_filters} filters of {channels}x{kh}x{kw}"),
            size,
        )?;
        if pool.checked_mul(pool).is_none() {
            return Err(NnError::Config(format!("pool size {pool} is too large")));
        }
        let mut l = ConvPool::new(
            &mut self.graph,
            &name,
            [n_filters, channels, kh, kw],
            pool,
            act,
            &mut self.rng,
        )?;
        l.pool_grad = pool_grad;
        self.push(Box::new(l))
    }

    /// Refuses a layer of `size` parameters (`None`: more than a `usize` holds) that would take
    /// the network past [`MAX_PARAMETERS`].
    fn check_size(&self, what: &str, size: Option<usize>) -> Result<()> {
        let have: usize = self
            .graph
            .parameters()
            .filter_map(|p| self.graph.value(p).ok())
            .map(|t| t.data().len())
            .sum();
        match size.and_then(|n| n.checked_add(have)) {
            Some(total) if total <= MAX_PARAMETERS => Ok(()),
            _ => Err(NnError::Config(format!(
                "{what} would take the network past {MAX_PARAMETERS} parameters (1 GiB as f32), nndl's limit"
            ))),
        }
    }

    /// The graph holding the parameters (for custom layers and optimisers).
    pub fn graph_mut(&mut self) -> &mut Graph<T> {
        &mut self.graph
    }

    /// The graph, read-only.
    pub fn graph(&self) -> &Graph<T> {
        &self.graph
    }

    /// The network's random source (initialisation of custom layers).
    pub fn rng_mut(&mut self) -> &mut rand_pcg::Pcg64 {
        &mut self.rng
    }

    /// A custom layer is built with the graph and the random source at once.
    pub fn graph_and_rng(&mut self) -> (&mut Graph<T>, &mut rand_pcg::Pcg64) {
        (&mut self.graph, &mut self.rng)
    }

    /// The layers.
    pub fn layers(&self) -> &[Box<dyn Layer<T>>] {
        &self.layers
    }

    /// The cost.
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// One sample's input shape.
    pub fn input_dims(&self) -> &[usize] {
        &self.input_dims
    }

    /// One sample's output shape.
    pub fn output_dims(&self) -> &[usize] {
        &self.dims
    }

    /// The regularised parameters (weights), layer by layer.
    pub fn weights(&self) -> Vec<Var> {
        self.layers.iter().flat_map(|l| l.weights()).collect()
    }

    /// All parameters in graph order.
    pub fn parameters(&self) -> Vec<Var> {
        self.graph.parameters().collect()
    }

    /// One line per layer.
    pub fn describe(&self) -> String {
        let mut s = format!("input {:?}", self.input_dims);
        for l in &self.layers {
            s.push_str(" -> ");
            s.push_str(&l.describe());
        }
        s.push_str(&format!(" ; cost {:?}", self.cost));
        s
    }

    /// The random state, for checkpoints.
    pub fn rng_state(&self) -> rand_pcg::Pcg64 {
        self.rng.clone()
    }

    /// Restores the random state from a checkpoint.
    pub fn set_rng_state(&mut self, rng: rand_pcg::Pcg64) {
        self.rng = rng;
    }

    /// Records the forward pass of the mini-batch `x`, returning the last layer's output.
    pub fn forward(&mut self, x: Var, mode: Mode) -> Result<Var> {
        let mut cx = Ctx {
            mode,
            rng: &mut self.rng,
        };
        let mut h = x;
        for l in &self.layers {
            h = l.forward(&mut self.graph, h, &mut cx)?;
        }
        Ok(h)
    }

    fn put_batch<S: Samples>(&mut self, data: &S, idx: &[usize]) -> Result<Var> {
        if data.sample_len() != self.input_dims.iter().product::<usize>() {
            return Err(NnError::Config(format!(
                "the data has {} values per sample but the network takes {:?}",
                data.sample_len(),
                self.input_dims
            )));
        }
        let mut dims = vec![idx.len()];
        dims.extend_from_slice(&self.input_dims);
        Ok(self.graph.input_with(&dims, |d| data.fill_inputs(idx, d))?)
    }

    /// Records input, forward and cost (with network3's in-graph L2 when asked) of the
    /// samples `idx`; returns the scalar cost.
    pub fn batch_loss<S: Samples>(
        &mut self,
        data: &S,
        idx: &[usize],
        reg: Regularization,
        mode: Mode,
    ) -> Result<Var> {
        let x = self.put_batch(data, idx)?;
        let z = self.forward(x, mode)?;
        self.labels.clear();
        self.labels.extend(idx.iter().map(|&i| data.label(i)));
        let labels = std::mem::take(&mut self.labels);
        let loss = self.cost.loss(&mut self.graph, z, &labels);
        self.labels = labels;
        let mut loss = loss?;
        if let Regularization::InGraph { lmbda, num_batches } = reg {
            if lmbda != 0.0 {
                let mut total: Option<Var> = None;
                for w in self.weights() {
                    let s = self.graph.sum_squares(w)?;
                    total = Some(match total {
                        Some(t) => self.graph.add(t, s)?,
                        None => s,
                    });
                }
                if let Some(t) = total {
                    let l2 = self
                        .graph
                        .scale(t, T::of(0.5 * lmbda / num_batches.max(1) as f64))?;
                    loss = self.graph.add(loss, l2)?;
                }
            }
        }
        Ok(loss)
    }

    /// Whether [`Network::train_epoch`] lets the linear layers take their SGD step inside the
    /// backward ([`autograd::Graph::backward_step`]: one pass over each weight matrix instead
    /// of five; on by default). The result is the same up to float rounding.
    pub fn set_fused_step(&mut self, on: bool) {
        self.fused_step = on;
    }

    /// Each parameter's decay factor for a step at `eta` (network2's weight decay on weights).
    fn fill_decays(&mut self, eta: f64, reg: Regularization) {
        let decay = match reg {
            Regularization::WeightDecay { lmbda, n } => T::of(1.0 - eta * lmbda / n.max(1) as f64),
            _ => T::one(),
        };
        let weights = self.weights();
        let params = self.parameters();
        self.decays.clear();
        self.decays.extend(
            params
                .iter()
                .map(|p| if weights.contains(p) { decay } else { T::one() }),
        );
    }

    /// The SGD update after a backward (skipping parameters a fused step already updated): `w <- decay*w - eta*grad` for weights (decay from
    /// network2's L2), `b <- b - eta*grad` for biases.
    pub fn sgd_update(&mut self, eta: f64, reg: Regularization) -> Result<()> {
        let decay = match reg {
            Regularization::WeightDecay { lmbda, n } => T::of(1.0 - eta * lmbda / n.max(1) as f64),
            _ => T::one(),
        };
        let eta = T::of(eta);
        let weights = self.weights();
        for p in self.parameters() {
            let d = if weights.contains(&p) {
                decay
            } else {
                T::one()
            };
            if self.graph.stepped(p).is_some() {
                continue;
            }
            let (v, g) = self.graph.param_and_grad(p)?;
            match g {
                Some(g) => v
                    .data_mut()
                    .iter_mut()
                    .zip(g.data())
                    .for_each(|(w, &g)| *w = d * *w - eta * g),
                None if d != T::one() => v.data_mut().iter_mut().for_each(|w| *w *= d),
                None => {}
            }
        }
        Ok(())
    }

    /// Why training diverged in the step just taken, if it did: every gradient is exactly
    /// zero although the cost is not (every unit saturated: nothing will change again), or,
    /// with `scan`, a parameter holds a NaN or infinity. The gradient test reads the biases'
    /// gradients and the weights' only when those are all zero; the parameter scan costs
    /// about a tenth of an update, so [`Network::train_epoch`] runs it every
    /// `SCAN_EVERY` mini-batches and after the last.
    fn divergence(&self, cost: f64, scan: bool) -> Option<String> {
        let weights = self.weights();
        let all_zero = |ps: &mut dyn Iterator<Item = Var>| {
            for p in ps {
                let zero = match (self.graph.stepped(p), self.graph.grad(p)) {
                    (Some(nonzero), _) => !nonzero,
                    (None, Some(g)) => g.data().iter().all(|&v| v == T::zero()),
                    (None, None) => true,
                };
                if !zero {
                    return false;
                }
            }
            true
        };
        let some_grad = self
            .parameters()
            .iter()
            .any(|&p| self.graph.grad(p).is_some() || self.graph.stepped(p).is_some());
        if cost != 0.0
            && some_grad
            && all_zero(
                &mut self
                    .parameters()
                    .into_iter()
                    .filter(|p| !weights.contains(p)),
            )
            && all_zero(&mut weights.iter().copied())
        {
            return Some(format!(
                "every gradient is exactly zero while the cost is {cost} (the units saturated: \
                 the net stopped learning)"
            ));
        }
        if scan {
            for p in self.parameters() {
                let Ok(t) = self.graph.value(p) else { continue };
                let finite = t.data().iter().fold(true, |ok, v| ok & v.is_finite());
                if !finite {
                    let name = self.graph.name(p).unwrap_or("?");
                    let bad = t
                        .data()
                        .iter()
                        .find(|v| !v.is_finite())
                        .map_or(f64::NAN, |v| v.f64());
                    return Some(format!("parameter {name} holds {bad}"));
                }
            }
        }
        None
    }

    /// One epoch of mini-batch SGD over `data` (shuffled with the network's seed when
    /// `shuffle`; network3 does not shuffle). `on_batch(images_done)` is called after each
    /// mini-batch (progress). Stops with [`NnError::NonFinite`] if the cost becomes NaN or
    /// infinite, and with [`NnError::Diverged`] if every gradient of a mini-batch is exactly
    /// zero while its cost is not, or a parameter is NaN or infinite (scanned every 16
    /// mini-batches and after the last).
    #[allow(clippy::too_many_arguments)]
    pub fn train_epoch<S: Samples>(
        &mut self,
        data: &S,
        mini_batch: usize,
        eta: f64,
        reg: Regularization,
        shuffle: bool,
        epoch: usize,
        mut on_batch: impl FnMut(usize),
    ) -> Result<EpochStats> {
        if mini_batch == 0 {
            return Err(NnError::Config(
                "the mini-batch size must be at least 1".into(),
            ));
        }
        if !eta.is_finite() || eta <= 0.0 || !T::of(eta).is_finite() {
            return Err(NnError::Config(format!(
                "the learning rate must be a positive number the network's precision holds, got {eta}"
            )));
        }
        let start = Instant::now();
        let n = data.len();
        let mut order = std::mem::take(&mut self.order);
        order.clear();
        order.extend(0..n);
        if shuffle {
            order.shuffle(&mut self.rng);
        }
        let mut sum = 0.0;
        let mut batches = 0;
        self.fill_decays(eta, reg);
        let decays = std::mem::take(&mut self.decays);
        let result = (|| {
            for (b, idx) in order.chunks(mini_batch).enumerate() {
                self.graph.reset();
                let loss = self.batch_loss(data, idx, reg, Mode::Train)?;
                let value = self.graph.value(loss)?.data()[0].f64();
                if !value.is_finite() {
                    return Err(NnError::NonFinite {
                        value,
                        epoch,
                        batch: b,
                        eta,
                    });
                }
                sum += value;
                batches += 1;
                if self.fused_step {
                    let sgd = autograd::Sgd {
                        eta: T::of(eta),
                        decay: &decays,
                    };
                    self.graph.backward_step(loss, &sgd)?;
                } else {
                    self.graph.backward(loss)?;
                }
                self.sgd_update(eta, reg)?;
                let last = (b + 1) * mini_batch >= n;
                if let Some(what) = self.divergence(value, last || b % SCAN_EVERY == SCAN_EVERY - 1)
                {
                    return Err(NnError::Diverged {
                        what,
                        epoch,
                        batch: b,
                        eta,
                    });
                }
                on_batch((b * mini_batch + idx.len()).min(n));
            }
            Ok(())
        })();
        self.graph.reset();
        self.order = order;
        self.decays = decays;
        result?;
        Ok(EpochStats {
            seconds: start.elapsed().as_secs_f64(),
            images: n,
            mean_cost: sum / batches.max(1) as f64,
        })
    }

    /// The predicted class of each sample of `data`, computed `batch` at a time without
    /// recording a backward.
    pub fn predict<S: Samples>(&mut self, data: &S, batch: usize) -> Result<Vec<usize>> {
        let mut out = Vec::with_capacity(data.len());
        let idx: Vec<usize> = (0..data.len()).collect();
        for chunk in idx.chunks(batch.max(1)) {
            self.graph.reset();
            let (z, _) = self.eval_batch(data, chunk, false)?;
            out.extend(tensor::argmax_rows(self.graph.value(z)?)?);
        }
        self.graph.reset();
        Ok(out)
    }

    /// Accuracy and mean cost on `data`; with `l2_lmbda`, network2's `total_cost` adds
    /// `0.5 * (lmbda / len(data)) * sum ||w||^2`.
    pub fn evaluate<S: Samples>(
        &mut self,
        data: &S,
        batch: usize,
        l2_lmbda: Option<f64>,
    ) -> Result<Evaluation> {
        let idx: Vec<usize> = (0..data.len()).collect();
        let (mut correct, mut cost) = (0usize, 0.0f64);
        for chunk in idx.chunks(batch.max(1)) {
            self.graph.reset();
            let (z, loss) = self.eval_batch(data, chunk, true)?;
            let loss = loss.expect("asked for the cost");
            let pred = tensor::argmax_rows(self.graph.value(z)?)?;
            correct += pred
                .iter()
                .zip(chunk)
                .filter(|(&p, &i)| p == data.label(i))
                .count();
            cost += self.graph.value(loss)?.data()[0].f64() * chunk.len() as f64;
        }
        self.graph.reset();
        let mut cost = cost / data.len().max(1) as f64;
        if let Some(l) = l2_lmbda {
            let sq: f64 = self
                .weights()
                .iter()
                .map(|&w| {
                    self.graph
                        .value(w)
                        .map(|t| t.data().iter().map(|v| v.f64() * v.f64()).sum::<f64>())
                        .unwrap_or(0.0)
                })
                .sum();
            cost += 0.5 * (l / data.len().max(1) as f64) * sq;
        }
        Ok(Evaluation {
            correct,
            total: data.len(),
            cost,
        })
    }

    /// Forward (and cost, with `with_cost`) of the samples `chunk` in eval mode, recording
    /// no backward.
    fn eval_batch<S: Samples>(
        &mut self,
        data: &S,
        chunk: &[usize],
        with_cost: bool,
    ) -> Result<(Var, Option<Var>)> {
        let was = self.graph.set_recording(false);
        let r = (|| {
            let x = self.put_batch(data, chunk)?;
            let z = self.forward(x, Mode::Eval)?;
            if !with_cost {
                return Ok((z, None));
            }
            self.labels.clear();
            self.labels.extend(chunk.iter().map(|&i| data.label(i)));
            let labels = std::mem::take(&mut self.labels);
            let loss = self.cost.loss(&mut self.graph, z, &labels);
            self.labels = labels;
            Ok((z, Some(loss?)))
        })();
        self.graph.set_recording(was);
        r
    }
}
