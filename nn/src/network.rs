//! A sequential network with a cost: the model (layers, forward, parameters) and the epoch
//! of mini-batch training an [`Optimizer`] steps.

use crate::monitor::{divergence, SCAN_EVERY};
use crate::{Cost, Ctx, Layer, Mode, NnError, Optimizer, Result, Samples};
use autograd::{Graph, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::time::Instant;
use tensor::Float;

mod builder;

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

impl EpochStats {
    /// Training images per second of the epoch.
    pub fn images_per_second(&self) -> f64 {
        self.images as f64 / self.seconds.max(1e-9)
    }
}

/// The most parameters a network may hold: 2^28 (1 GiB as f32), over 150 times the book's
/// largest net. A bigger `--layers` description or model file is refused before anything is
/// allocated, rather than aborting the process when the allocation fails.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// A sequence of layers and a cost, with its parameters on one graph.
///
/// Build one layer by layer (or with [`Network::sigmoid_mlp`], [`Network::mlp`],
/// [`crate::spec::build`]), then train it an epoch at a time with [`Network::train_epoch`]:
///
/// ```
/// use nndl_nn::{Cost, Epoch, InMemory, Init, Network, Regularization, Sgd};
///
/// // 200 points of the unit square, labelled by which side of the diagonal they are on.
/// let mut data = InMemory { sample_len: 2, ..Default::default() };
/// for i in 0..200 {
///     let (a, b) = ((i * 37 % 100) as f64 / 100.0, (i * 61 % 101) as f64 / 101.0);
///     data.inputs.extend([a, b]);
///     data.labels.push(usize::from(a > b));
/// }
///
/// let mut net = Network::<f32>::sigmoid_mlp(&[2, 10, 2], Cost::CrossEntropy, Init::ScaledByInputs, 1)?;
/// let before = net.evaluate(&data, 100, None)?;
/// let mut sgd = Sgd::new(2.0, Regularization::None);
/// for epoch in 0..30 {
///     net.train_epoch(&data, &mut sgd, Epoch::shuffled(epoch, 10), |_done| {})?;
/// }
/// let after = net.evaluate(&data, 100, None)?;
/// assert!(after.cost < before.cost / 2.0, "{before:?} -> {after:?}");
/// assert!(after.accuracy() > 0.9, "{after:?}");
/// assert_eq!(net.predict(&data, 100)?.len(), 200);
/// # Ok::<(), nndl_nn::NnError>(())
/// ```
pub struct Network<T: Float> {
    pub(crate) graph: Graph<T>,
    layers: Vec<Box<dyn Layer<T>>>,
    input_dims: Vec<usize>,
    dims: Vec<usize>,
    cost: Cost,
    label_smoothing: f64,
    rng: rand_pcg::Pcg64,
    order: Vec<usize>,
    labels: Vec<usize>,
}

/// What one epoch of training is: its number (counted from 0, named in errors), the
/// mini-batch size, and whether the samples are shuffled first (with the network's seed;
/// network3 does not shuffle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    /// The epoch's number, counted from 0.
    pub index: usize,
    /// Samples per SGD step.
    pub mini_batch: usize,
    /// Shuffle the samples before the epoch.
    pub shuffle: bool,
}

impl Epoch {
    /// Epoch `index` of `mini_batch`-sample steps over the samples shuffled (network.py,
    /// network2.py).
    pub fn shuffled(index: usize, mini_batch: usize) -> Self {
        Epoch {
            index,
            mini_batch,
            shuffle: true,
        }
    }

    /// Epoch `index` of `mini_batch`-sample steps over the samples in order (network3.py).
    pub fn in_order(index: usize, mini_batch: usize) -> Self {
        let shuffled = Epoch::shuffled(index, mini_batch);
        Epoch {
            shuffle: false,
            ..shuffled
        }
    }
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
            label_smoothing: 0.0,
            rng: rand_pcg::Pcg64::seed_from_u64(seed),
            order: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Trains (and costs) against targets smoothed by `eps`: `1 - eps` on the label and
    /// `eps` spread evenly over all classes (Szegedy et al. 2016; PyTorch's
    /// `CrossEntropyLoss(label_smoothing=eps)`). Log-likelihood cost only; 0 turns it off.
    pub fn set_label_smoothing(&mut self, eps: f64) -> Result<()> {
        if !(0.0..1.0).contains(&eps) {
            return Err(NnError::Config(format!(
                "label smoothing must be in [0, 1), got {eps}"
            )));
        }
        if eps > 0.0 && self.cost != Cost::LogLikelihood {
            return Err(NnError::Config(format!(
                "label smoothing goes with the log-likelihood cost, not {:?}",
                self.cost
            )));
        }
        self.label_smoothing = eps;
        Ok(())
    }

    /// The label smoothing in use (0: none).
    pub fn label_smoothing(&self) -> f64 {
        self.label_smoothing
    }

    /// Appends a layer after checking it accepts the previous layer's output.
    /// A layer whose output would hold no value (a dimension of 0), or more values than a
    /// `usize` counts, is refused, named by its position (counted from 1).
    pub fn push(&mut self, layer: Box<dyn Layer<T>>) -> Result<&mut Self> {
        let n = self.layers.len() + 1;
        let out = layer
            .output_dims(&self.dims)
            .map_err(|e| NnError::Config(format!("layer {n}: {e}")))?;
        let values = out.iter().try_fold(1usize, |v, &d| v.checked_mul(d));
        if out.is_empty() || values == Some(0) {
            return Err(NnError::Config(format!(
                "layer {n}: {} would output {out:?}, no values",
                layer.describe()
            )));
        }
        if values.is_none() {
            return Err(NnError::Config(format!(
                "layer {n}: {} would output {out:?}, more values than a usize counts",
                layer.describe()
            )));
        }
        self.dims = out;
        self.layers.push(layer);
        Ok(self)
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

    /// Every parameter's value as bits (f32 widened exactly), in graph order: two networks
    /// are bit-identical when these are equal (how same-seed determinism and resume are
    /// tested).
    pub fn parameter_bits(&self) -> Vec<u64> {
        let values = self
            .graph
            .parameters()
            .filter_map(|p| self.graph.value(p).ok());
        values
            .flat_map(|t| t.data().iter().map(|v| v.f64().to_bits()))
            .collect()
    }

    /// The regularised parameters (weights), layer by layer.
    pub fn weights(&self) -> Vec<Var> {
        self.layers.iter().flat_map(|l| l.weights()).collect()
    }

    /// The trained parameters in graph order (not a batch norm's running statistics, which
    /// are frozen and updated by its forward pass).
    pub fn parameters(&self) -> Vec<Var> {
        self.graph
            .parameters()
            .filter(|&p| !self.graph.is_frozen(p))
            .collect()
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

    pub(crate) fn put_batch<S: Samples>(&mut self, data: &S, idx: &[usize]) -> Result<Var> {
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

    /// The cost of the outputs `z` against the labels of the samples `idx`.
    pub(crate) fn cost_of<S: Samples>(&mut self, z: Var, data: &S, idx: &[usize]) -> Result<Var> {
        self.labels.clear();
        self.labels.extend(idx.iter().map(|&i| data.label(i)));
        let labels = std::mem::take(&mut self.labels);
        let loss = if self.label_smoothing > 0.0 {
            crate::cost::smoothed_log_likelihood(&mut self.graph, z, &labels, self.label_smoothing)
        } else {
            self.cost.loss(&mut self.graph, z, &labels)
        };
        self.labels = labels;
        loss
    }

    /// Records input, forward and cost of the samples `idx`; returns the scalar cost.
    ///
    /// With it, a training loop of one's own: the network's graph records the step, an
    /// [`Optimizer`] takes the backward and the update, and the graph is reset for the next.
    ///
    /// ```
    /// use nndl_nn::{Activation, Adam, Cost, InMemory, Init, Mode, Network, Optimizer, Samples};
    ///
    /// let mut data = InMemory { sample_len: 2, ..Default::default() };
    /// for i in 0..200 {
    ///     let (a, b) = ((i * 37 % 100) as f64 / 100.0, (i * 61 % 101) as f64 / 101.0);
    ///     data.inputs.extend([a, b]);
    ///     data.labels.push(usize::from(a > b));
    /// }
    ///
    /// let mut net = Network::<f64>::new(&[2], Cost::LogLikelihood, 7);
    /// net.add_fc(16, Activation::Relu, Init::He, 0.0)?
    ///     .add_fc(2, Activation::Identity, Init::Zeros, 0.0)?;
    /// let (params, weights) = (net.parameters(), net.weights());
    /// let mut opt = Adam::new(0.01);
    /// opt.begin_epoch(&params, &weights)?;
    ///
    /// let order: Vec<usize> = (0..data.len()).collect();
    /// let mut losses = Vec::new();
    /// for batch in order.chunks(20).cycle().take(100) {
    ///     net.graph_mut().reset();
    ///     let loss = net.batch_loss(&data, batch, Mode::Train)?;
    ///     losses.push(net.graph().value(loss)?.data()[0]);
    ///     opt.step(net.graph_mut(), loss, &params, &weights)?;
    /// }
    /// // Zero output weights: every class is equally likely at first, a cost of ln 2.
    /// assert!((losses[0] - 2f64.ln()).abs() < 1e-12);
    /// let last = losses[90..].iter().sum::<f64>() / 10.0;
    /// assert!(last < losses[0] / 2.0, "{losses:?}");
    /// # Ok::<(), nndl_nn::NnError>(())
    /// ```
    pub fn batch_loss<S: Samples>(&mut self, data: &S, idx: &[usize], mode: Mode) -> Result<Var> {
        let x = self.put_batch(data, idx)?;
        let z = self.forward(x, mode)?;
        self.cost_of(z, data, idx)
    }

    /// One epoch of mini-batch training over `data`, each step taken by `opt`.
    /// `on_batch(images_done)` is called after each mini-batch (progress). Stops with
    /// [`NnError::NonFinite`] if the cost becomes NaN or infinite, and with
    /// [`NnError::Diverged`] if every gradient of a mini-batch is exactly zero while its cost
    /// is not, or a parameter is NaN or infinite (scanned every 16 mini-batches and after the
    /// last).
    pub fn train_epoch<S: Samples>(
        &mut self,
        data: &S,
        opt: &mut dyn Optimizer<T>,
        epoch: Epoch,
        mut on_batch: impl FnMut(usize),
    ) -> Result<EpochStats> {
        let Epoch {
            index,
            mini_batch,
            shuffle,
        } = epoch;
        if mini_batch == 0 {
            return Err(NnError::Config(
                "the mini-batch size must be at least 1".into(),
            ));
        }
        let (params, weights) = (self.parameters(), self.weights());
        opt.begin_epoch(&params, &weights)?;
        data.begin_epoch(index);
        let eta = opt.learning_rate();
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
        let result = (|| {
            for (b, idx) in order.chunks(mini_batch).enumerate() {
                self.graph.reset();
                let loss = self.batch_loss(data, idx, Mode::Train)?;
                let loss = opt
                    .regularization()
                    .add_to(&mut self.graph, &weights, loss)?;
                let value = self.graph.value(loss)?.data()[0].f64();
                if !value.is_finite() {
                    return Err(NnError::NonFinite {
                        value,
                        epoch: index,
                        batch: b,
                        eta,
                    });
                }
                sum += value;
                batches += 1;
                opt.step(&mut self.graph, loss, &params, &weights)?;
                let last = (b + 1) * mini_batch >= n;
                let scan = last || b % SCAN_EVERY == SCAN_EVERY - 1;
                if let Some(what) = divergence(&self.graph, &params, &weights, value, scan) {
                    return Err(NnError::Diverged {
                        what,
                        epoch: index,
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
        result?;
        Ok(EpochStats {
            seconds: start.elapsed().as_secs_f64(),
            images: n,
            mean_cost: sum / batches.max(1) as f64,
        })
    }
}
