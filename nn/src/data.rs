//! What the training loop reads: labelled samples converted to floats a mini-batch at a time.
//! A data set's crate implements [`Samples`] for its own type (MNIST's in `mnist`), so that
//! nn depends on no data set.

use tensor::Float;

/// A labelled data set the training loop can draw mini-batches from.
///
/// A data set of one's own needs only its size, the values per sample, how to write a batch
/// of inputs, and the labels. Here, XOR's four points:
///
/// ```
/// use nndl_nn::{Float, Samples};
///
/// struct Xor;
///
/// impl Samples for Xor {
///     fn len(&self) -> usize {
///         4
///     }
///     fn sample_len(&self) -> usize {
///         2
///     }
///     fn fill_inputs<T: Float>(&self, idx: &[usize], out: &mut [T]) {
///         for (o, &i) in out.chunks_exact_mut(2).zip(idx) {
///             o[0] = T::of((i & 1) as f64);
///             o[1] = T::of((i >> 1) as f64);
///         }
///     }
///     fn label(&self, i: usize) -> usize {
///         (i & 1) ^ (i >> 1)
///     }
/// }
///
/// let mut batch = [0.0f32; 4];
/// Xor.fill_inputs(&[3, 1], &mut batch);
/// assert_eq!(batch, [1.0, 1.0, 1.0, 0.0]);
/// assert_eq!((0..4).map(|i| Xor.label(i)).collect::<Vec<_>>(), [0, 1, 1, 0]);
///
/// // Any `Samples` can be evaluated and trained on.
/// let mut net = nndl_nn::Network::<f32>::sigmoid_mlp(&[2, 3, 2], nndl_nn::Cost::Quadratic, nndl_nn::Init::Large, 0)?;
/// assert_eq!(net.evaluate(&Xor, 4, None)?.total, 4);
/// # Ok::<(), nndl_nn::NnError>(())
/// ```
pub trait Samples: Sync {
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of input values per sample.
    fn sample_len(&self) -> usize;
    /// Writes the inputs of the samples `idx`, one after another, into `out`.
    fn fill_inputs<T: Float>(&self, idx: &[usize], out: &mut [T]);
    /// The class label of sample `i`.
    fn label(&self, i: usize) -> usize;
    /// Called by the training loop before epoch `epoch` (augmentation draws per epoch).
    fn begin_epoch(&self, _epoch: usize) {}
}

/// Samples held as f64 vectors, for tests and small experiments.
///
/// ```
/// use nndl_nn::{InMemory, Samples};
///
/// // Three samples of two values each.
/// let data = InMemory { inputs: vec![0.0, 0.1, 1.0, 1.1, 2.0, 2.1], labels: vec![0, 1, 2], sample_len: 2 };
/// assert_eq!((data.len(), data.sample_len()), (3, 2));
/// let mut batch = [0.0f32; 4];
/// data.fill_inputs(&[2, 0], &mut batch); // samples 2 and 0, in that order
/// assert_eq!(batch, [2.0, 2.1, 0.0, 0.1]);
/// assert_eq!(data.label(1), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemory {
    /// Inputs, `len * sample_len` values.
    pub inputs: Vec<f64>,
    /// Labels.
    pub labels: Vec<usize>,
    /// Values per sample.
    pub sample_len: usize,
}

impl Samples for InMemory {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn sample_len(&self) -> usize {
        self.sample_len
    }
    fn fill_inputs<T: Float>(&self, idx: &[usize], out: &mut [T]) {
        let n = self.sample_len;
        for (o, &i) in out.chunks_exact_mut(n).zip(idx) {
            for (o, &v) in o.iter_mut().zip(&self.inputs[i * n..(i + 1) * n]) {
                *o = T::of(v);
            }
        }
    }
    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }
}
