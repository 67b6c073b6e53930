//! MNIST as the samples `nn` trains on: [`nn::Samples`] for [`Dataset`], images augmented on
//! the fly ([`Augmented`]) and test-time augmentation ([`probabilities_augmented`]).
//!
//! Here rather than in `nn` so that the layer library knows no data set (and no download
//! stack); here rather than in `nndl` because the orphan rule lets only the crate of
//! `Dataset` or of `Samples` implement one for the other.

use crate::augment::Augment;
use crate::{Dataset, Scale};
use nn::{Network, Samples};
use std::sync::atomic::{AtomicU64, Ordering};
use tensor::Float;

impl Samples for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }
    fn sample_len(&self) -> usize {
        self.pixels_per_image()
    }
    fn fill_inputs<T: Float>(&self, idx: &[usize], out: &mut [T]) {
        // A product by the reciprocal rounded to T, not this crate's division
        // (`Element::from_pixel`): the rounding every recorded training run used (/ 256 is
        // exact either way).
        let inv = T::of(match self.scale() {
            Scale::Div255 => 1.0 / 255.0,
            Scale::Div256 => 1.0 / 256.0,
        });
        self.fill_batch_with(idx, out, |p| T::of(f64::from(p)) * inv);
    }
    fn label(&self, i: usize) -> usize {
        usize::from(Dataset::label(self, i))
    }
}

/// MNIST images augmented on the fly: each time a mini-batch is filled, every image is
/// rotated, scaled and shifted by the transform [`Augment::draw`] gives for `(seed, epoch,
/// image index)`, so an epoch sees each image once, transformed anew, and a resumed run draws
/// what an uninterrupted one would. With [`Augment::NONE`], and from the epoch given to
/// [`Augmented::plain_from`] on, the images are the dataset's own.
pub struct Augmented<'a> {
    data: &'a Dataset,
    augment: Augment,
    seed: u64,
    epoch: AtomicU64,
    plain_from: u64,
}

impl<'a> Augmented<'a> {
    /// `data` augmented with the ranges of `augment`, draws seeded by `seed`.
    pub fn new(data: &'a Dataset, augment: Augment, seed: u64) -> Self {
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
            Scale::Div255 => 1.0 / 255.0,
            Scale::Div256 => 1.0 / 256.0,
        };
        let (rows, cols) = (self.data.rows(), self.data.cols());
        // Image by image on every thread: one thread warping a batch left the others idle
        // for 2-3% of a speed run's training.
        let n = (idx.len() * rows * cols).min(out.len());
        let out = &mut out[..n];
        tensor::for_each_chunk(out, rows * cols, &|k, o| {
            let i = idx[k];
            let t = self.augment.draw(self.seed, epoch, i as u64);
            t.warp(self.data.image(i), rows, cols, o, |v| {
                T::of(f64::from(v) * inv)
            });
        });
    }
    fn label(&self, i: usize) -> usize {
        usize::from(self.data.label(i))
    }
    fn begin_epoch(&self, epoch: usize) {
        self.epoch.store(epoch as u64, Ordering::Relaxed);
    }
}

/// Test-time augmentation: `net`'s class probabilities of the images of `data` as they are
/// and of `copies - 1` randomly transformed copies (ranges `augment`, copy `k` drawn as epoch
/// `k` of [`Augmented`] seeded `seed`), averaged; `batch` images at a time. `copies = 1` is
/// [`Network::probabilities`].
pub fn probabilities_augmented<T: Float>(
    net: &mut Network<T>,
    data: &Dataset,
    augment: Augment,
    copies: usize,
    seed: u64,
    batch: usize,
) -> nn::Result<Vec<f64>> {
    let mut sum = net.probabilities(data, batch)?;
    let augmented = Augmented::new(data, augment, seed);
    for k in 1..copies {
        augmented.begin_epoch(k);
        let p = net.probabilities(&augmented, batch)?;
        sum.iter_mut().zip(&p).for_each(|(s, v)| *s += v);
    }
    let n = copies.max(1) as f64;
    sum.iter_mut().for_each(|s| *s /= n);
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset() -> Dataset {
        let images: Vec<u8> = (0..3 * 784).map(|i| ((i * 31) % 256) as u8).collect();
        Dataset::new(images, vec![3, 1, 4], 28, 28).unwrap()
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
        // The images are warped on every thread: the batch is the one thread's.
        for threads in [1, 2, 3] {
            let batch = tensor::with_threads(threads, || fill(&a, &[2, 0, 1, 2, 0]));
            let one =
                |k: usize, i: usize| batch[k * 784..(k + 1) * 784] == first[i * 784..(i + 1) * 784];
            assert!(
                [(0, 2), (1, 0), (2, 1), (3, 2), (4, 0)]
                    .iter()
                    .all(|&(k, i)| one(k, i)),
                "{threads} threads"
            );
        }
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

    #[test]
    fn test_time_augmentation_averages_the_plain_images_and_the_augmented_epochs() {
        let images: Vec<u8> = (0..5 * 784)
            .map(|i| ((i * 31 + i / 97) % 256) as u8)
            .collect();
        let data = Dataset::new(images, vec![3, 1, 4, 1, 5], 28, 28).unwrap();
        let mut net = nn::spec::build::<f32>(
            "conv2d:4x3x3,pad:1 bn,relu pool:2 flatten softmax:10,init:he",
            &crate::IMAGE_DIMS,
            nn::Cost::LogLikelihood,
            3,
        )
        .unwrap();
        let augment = Augment::MNIST;
        let plain = net.probabilities(&data, 2).unwrap();
        // One copy is the plain probabilities; copies of the identity transform average to them.
        assert_eq!(
            probabilities_augmented(&mut net, &data, augment, 1, 7, 2).unwrap(),
            plain
        );
        let same = probabilities_augmented(&mut net, &data, Augment::NONE, 3, 7, 2).unwrap();
        assert!(same.iter().zip(&plain).all(|(a, b)| (a - b).abs() < 1e-12));
        // Three copies: the plain images and epochs 1 and 2 of `Augmented` with the same seed.
        let tta = probabilities_augmented(&mut net, &data, augment, 3, 7, 2).unwrap();
        let augmented = Augmented::new(&data, augment, 7);
        let mut want = plain.clone();
        for epoch in [1, 2] {
            augmented.begin_epoch(epoch);
            let p = net.probabilities(&augmented, 2).unwrap();
            want.iter_mut().zip(&p).for_each(|(w, v)| *w += v);
        }
        assert!(tta
            .iter()
            .zip(&want)
            .all(|(t, w)| (t - w / 3.0).abs() < 1e-12));
        assert!(tta.iter().zip(&plain).any(|(t, p)| (t - p).abs() > 1e-4));
        for row in tta.chunks_exact(10) {
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-6);
        }
        // Another seed draws other copies.
        assert_ne!(
            probabilities_augmented(&mut net, &data, augment, 3, 8, 2).unwrap(),
            tta
        );
    }
}
