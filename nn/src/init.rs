//! The book's weight initialisations.

use rand::Rng;
use tensor::{Float, Tensor};

/// How a layer's weights are drawn (biases are N(0, 1) for the book's schemes, zero for
/// [`Init::Zeros`] and [`Init::He`]).
///
/// ```
/// use nndl_nn::rand::SeedableRng;
/// use nndl_nn::{Init, Pcg64, Tensor};
///
/// let mut rng = Pcg64::seed_from_u64(0);
/// // A 100 -> 400 layer's weights [n_out, n_in]: N(0, 1/n_in) has standard deviation 0.1.
/// let w: Tensor<f64> = Init::ScaledByInputs.weights(&[400, 100], 100, 400, &mut rng)?;
/// assert_eq!(w.dims(), &[400, 100]);
/// let std = (w.data().iter().map(|x| x * x).sum::<f64>() / w.numel() as f64).sqrt();
/// assert!((std - 0.1).abs() < 0.002, "{std}");
///
/// let b: Tensor<f32> = Init::He.biases(400, &mut rng)?;
/// assert!(b.data().iter().all(|&x| x == 0.0));
/// let w: Tensor<f32> = Init::Zeros.weights(&[3, 2], 2, 3, &mut rng)?;
/// assert_eq!(w.data(), &[0.0; 6]);
/// # Ok::<(), nndl_nn::NnError>(())
/// ```
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
