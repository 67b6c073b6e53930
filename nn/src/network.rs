//! A sequential network with a cost: the model (layers, forward, parameters) and the epoch
//! of mini-batch training an [`Optimizer`] steps.

use crate::layers::{
    BatchNorm, Conv2d, Conv2dConfig, ConvPool, Dropout, FcConfig, Flatten, FullyConnected,
    MaxPool2d,
};
use crate::monitor::{divergence, SCAN_EVERY};
use crate::{
    Activation, Cost, Ctx, Init, Layer, Mode, NnError, Optimizer, PoolGrad, Result, Samples,
};
use autograd::{Graph, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::time::Instant;
use tensor::Float;

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
pub struct Network<T: Float> {
    pub(crate) graph: Graph<T>,
    layers: Vec<Box<dyn Layer<T>>>,
    input_dims: Vec<usize>,
    dims: Vec<usize>,
    cost: Cost,
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
            rng: rand_pcg::Pcg64::seed_from_u64(seed),
            order: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// The book's `Network(sizes)`: fully connected sigmoid layers, the last one's sigmoid
    /// applied by the cost.
    pub fn sigmoid_mlp(sizes: &[usize], cost: Cost, init: Init, seed: u64) -> Result<Self> {
        Self::mlp(sizes, Activation::Sigmoid, cost, init, seed)
    }

    /// Fully connected layers of `sizes` with `hidden` neurons (chapter 3's tanh exercise),
    /// the output layer's nonlinearity applied by the cost.
    pub fn mlp(
        sizes: &[usize],
        hidden: Activation,
        cost: Cost,
        init: Init,
        seed: u64,
    ) -> Result<Self> {
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
                hidden
            };
            net.add_fc(n, act, init, 0.0)?;
        }
        Ok(net)
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
        let config = FcConfig {
            activation: act,
            init,
            p_dropout,
        };
        let l = FullyConnected::new(&mut self.graph, &name, n_in, n_out, config, &mut self.rng)?;
        self.push(Box::new(l))
    }

    /// Appends a conv-pool layer of `n_filters` `kh x kw` filters over the current channels,
    /// the pool's gradient at ties going where `pool_grad` says ([`PoolGrad::First`] as
    /// PyTorch, [`PoolGrad::Ties`] as network3.py's Theano).
    pub fn add_conv_pool(
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

    /// Appends a convolution of `n_filters` `k x k` filters over the current channels, padded,
    /// strided, biased and activated as `config` says.
    pub fn add_conv2d(
        &mut self,
        n_filters: usize,
        k: usize,
        config: Conv2dConfig,
    ) -> Result<&mut Self> {
        let channels = match self.dims.len() {
            3 => self.dims[0],
            _ => return Err(NnError::Config(format!("a conv2d layer needs [channels, height, width] input, not the output of shape {:?}", self.dims))),
        };
        let size = [channels, k, k]
            .iter()
            .try_fold(n_filters, |n, &d| n.checked_mul(d))
            .and_then(|w| w.checked_add(n_filters));
        self.check_size(&format!("{n_filters} filters of {channels}x{k}x{k}"), size)?;
        let name = format!("l{}", self.layers.len());
        let filter = [n_filters, channels, k, k];
        let l = Conv2d::new(&mut self.graph, &name, filter, config, &mut self.rng)?;
        self.push(Box::new(l))
    }

    /// Appends a batch norm over the current features (`[C]`) or channels (`[C, H, W]`),
    /// then `act`.
    pub fn add_batch_norm(&mut self, act: Activation) -> Result<&mut Self> {
        let channels = self.dims.first().copied().unwrap_or(0);
        let name = format!("l{}", self.layers.len());
        let l = BatchNorm::new(&mut self.graph, &name, channels, act)?;
        self.push(Box::new(l))
    }

    /// Appends a `k x k` max-pool.
    pub fn add_max_pool(&mut self, k: usize) -> Result<&mut Self> {
        self.push(Box::new(MaxPool2d { k }))
    }

    /// Appends inverted dropout with probability `p`.
    pub fn add_dropout(&mut self, p: f64) -> Result<&mut Self> {
        self.push(Box::new(Dropout::new(p)?))
    }

    /// Appends a flatten to `[N, features]`.
    pub fn add_flatten(&mut self) -> Result<&mut Self> {
        self.push(Box::new(Flatten))
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
        let loss = self.cost.loss(&mut self.graph, z, &labels);
        self.labels = labels;
        loss
    }

    /// Records input, forward and cost of the samples `idx`; returns the scalar cost.
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
                let loss = opt.regularize(&mut self.graph, &weights, loss)?;
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
