//! What the training loop reads: labelled samples converted to floats a mini-batch at a time.

use mnist::augment::Augment;
use std::sync::atomic::{AtomicU64, Ordering};
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

impl Samples for mnist::Dataset {
    fn len(&self) -> usize {
        mnist::Dataset::len(self)
    }
    fn sample_len(&self) -> usize {
        self.pixels_per_image()
    }
    fn fill_inputs<T: Float>(&self, idx: &[usize], out: &mut [T]) {
        // A product by the reciprocal rounded to T, not mnist's division (`Element::from_pixel`):
        // the rounding every recorded training run used (/ 256 is exact either way).
        let inv = T::of(match self.scale() {
            mnist::Scale::Div255 => 1.0 / 255.0,
            mnist::Scale::Div256 => 1.0 / 256.0,
        });
        self.fill_batch_with(idx, out, |p| T::of(f64::from(p)) * inv);
    }
    fn label(&self, i: usize) -> usize {
        usize::from(mnist::Dataset::label(self, i))
    }
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

/// MNIST images augmented on the fly: each time a mini-batch is filled, every image is
/// rotated, scaled and shifted by the transform [`Augment::draw`] gives for `(seed, epoch,
/// image index)`, so an epoch sees each image once, transformed anew, and a resumed run draws
/// what an uninterrupted one would. With [`Augment::NONE`], and from the epoch given to
/// [`Augmented::plain_from`] on, the images are the dataset's own.
pub struct Augmented<'a> {
    data: &'a mnist::Dataset,
    augment: Augment,
    seed: u64,
    epoch: AtomicU64,
    plain_from: u64,
}

impl<'a> Augmented<'a> {
    /// `data` augmented with the ranges of `augment`, draws seeded by `seed`.
    pub fn new(data: &'a mnist::Dataset, augment: Augment, seed: u64) -> Self {
        Augmented {
            data,
            augment,
            seed,
            epoch: AtomicU64::new(0),
            plain_from: u64::MAX,
        }
    }

    /// The same, but epochs `epoch` and later see the images as they are (the images a net
    /// is tested on are not interpolated).
    pub fn plain_from(self, epoch: usize) -> Self {
        Augmented {
            plain_from: epoch as u64,
            ..self
        }
    }
}

impl Samples for Augmented<'_> {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn sample_len(&self) -> usize {
        self.data.pixels_per_image()
    }
    fn fill_inputs<T: Float>(&self, idx: &[usize], out: &mut [T]) {
        let epoch = self.epoch.load(Ordering::Relaxed);
        if self.augment.is_none() || epoch >= self.plain_from {
            return Samples::fill_inputs(self.data, idx, out);
        }
        let inv = match self.data.scale() {
            mnist::Scale::Div255 => 1.0 / 255.0,
            mnist::Scale::Div256 => 1.0 / 256.0,
        };
        let (rows, cols) = (self.data.rows(), self.data.cols());
        for (o, &i) in out.chunks_exact_mut(rows * cols).zip(idx) {
            let t = self.augment.draw(self.seed, epoch, i as u64);
            t.warp(self.data.image(i), rows, cols, o, |v| {
                T::of(f64::from(v) * inv)
            });
        }
    }
    fn label(&self, i: usize) -> usize {
        usize::from(self.data.label(i))
    }
    fn begin_epoch(&self, epoch: usize) {
        self.epoch.store(epoch as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> mnist::Dataset {
        let images: Vec<u8> = (0..3 * 784).map(|i| ((i * 31) % 256) as u8).collect();
        mnist::Dataset::new(images, vec![3, 1, 4], 28, 28).unwrap()
    }

    fn fill(a: &Augmented<'_>, idx: &[usize]) -> Vec<f32> {
        let mut out = vec![f32::NAN; idx.len() * 784];
        a.fill_inputs(idx, &mut out);
        out
    }

    #[test]
    fn augmented_batches_depend_on_seed_epoch_and_image_only() {
        let d = dataset();
        let a = Augmented::new(&d, Augment::MNIST, 5);
        let first = fill(&a, &[0, 1, 2]);
        assert!(first.iter().all(|v| (0.0..=1.0).contains(v)));
        // The same image in another batch position gets the same transform.
        assert_eq!(fill(&a, &[2]), first[2 * 784..]);
        a.begin_epoch(1);
        let second = fill(&a, &[0, 1, 2]);
        assert_ne!(first, second, "a new epoch draws new transforms");
        a.begin_epoch(0);
        assert_eq!(
            fill(&a, &[0, 1, 2]),
            first,
            "and epoch 0 again the same ones"
        );
        assert_ne!(
            fill(&Augmented::new(&d, Augment::MNIST, 6), &[0, 1, 2]),
            first
        );
        assert_eq!((a.len(), a.sample_len(), a.label(2)), (3, 784, 4));
        // No augmentation gives the plain batches, bit for bit (a run without augmentation
        // trains on exactly the dataset's values).
        let mut plain = vec![0f32; 3 * 784];
        d.fill_inputs(&[0, 1, 2], &mut plain);
        assert_eq!(
            fill(&Augmented::new(&d, Augment::NONE, 5), &[0, 1, 2]),
            plain
        );
        // Plain from epoch 1 on: epoch 0 as before, epochs 1 and 2 the dataset's values.
        let late = Augmented::new(&d, Augment::MNIST, 5).plain_from(1);
        assert_eq!(fill(&late, &[0, 1, 2]), first);
        for epoch in [1, 2] {
            late.begin_epoch(epoch);
            assert_eq!(fill(&late, &[0, 1, 2]), plain, "epoch {epoch}");
        }
    }
}
