//! What the training loop reads: labelled samples converted to floats a mini-batch at a time.
//! A data set's crate implements [`Samples`] for its own type (MNIST's in `mnist`), so that
//! nn depends on no data set.

use tensor::Float;

/// A labelled data set the training loop can draw mini-batches from.
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
