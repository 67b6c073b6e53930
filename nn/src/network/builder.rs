//! Building a network: the book's stacks of fully connected layers, and the `add_*` helpers
//! that size each layer from the previous one's output and refuse one that would take the
//! network past [`MAX_PARAMETERS`] before anything is allocated.

use super::{Network, MAX_PARAMETERS};
use crate::layers::{
    BatchNorm, Conv2d, Conv2dConfig, ConvPool, Dropout, FcConfig, Flatten, FullyConnected,
    MaxPool2d,
};
use crate::{Activation, Cost, Init, NnError, PoolGrad, Result};
use tensor::Float;

impl<T: Float> Network<T> {
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
}
