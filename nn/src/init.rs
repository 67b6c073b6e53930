//! The book's weight initialisations.

use rand::Rng;
use tensor::{Float, Tensor};

/// How a layer's weights are drawn (biases are N(0, 1) for the book's schemes, zero for
/// [`Init::Zeros`] and [`Init::He`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// N(0, 1): network.py, and network2's `large_weight_initializer`.
    Large,
    /// N(0, 1/n_in): network2's default initializer.
    ScaledByInputs,
    /// N(0, 1/n_out): network3's choice (n_out of a conv-pool layer is filters*h*w/pool area).
    ScaledByOutputs,
    /// Zeros for weights and biases: network3's softmax layer.
    Zeros,
    /// N(0, 2/n_in), biases zero: He et al. 2015 for ReLU nets (PyTorch's
    /// `kaiming_normal_(nonlinearity="relu")`).
    He,
}

impl Init {
    /// Weights of `dims` with fan-in `n_in` and fan-out `n_out`.
    pub fn weights<T: Float, R: Rng + ?Sized>(
        self,
        dims: &[usize],
        n_in: usize,
        n_out: usize,
        rng: &mut R,
    ) -> crate::Result<Tensor<T>> {
        let t = match self {
            Init::Large => Tensor::randn(dims, 0.0, 1.0, rng),
            Init::ScaledByInputs => {
                Tensor::randn(dims, 0.0, (1.0 / n_in.max(1) as f64).sqrt(), rng)
            }
            Init::ScaledByOutputs => {
                Tensor::randn(dims, 0.0, (1.0 / n_out.max(1) as f64).sqrt(), rng)
            }
            Init::Zeros => Tensor::zeros(dims),
            Init::He => Tensor::randn(dims, 0.0, (2.0 / n_in.max(1) as f64).sqrt(), rng),
        };
        Ok(t?)
    }

    /// Biases of `n` elements.
    pub fn biases<T: Float, R: Rng + ?Sized>(
        self,
        n: usize,
        rng: &mut R,
    ) -> crate::Result<Tensor<T>> {
        let t = match self {
            Init::Zeros | Init::He => Tensor::zeros(&[n]),
            _ => Tensor::randn(&[n], 0.0, 1.0, rng),
        };
        Ok(t?)
    }
}
