//! A set of labelled images kept as u8 in memory and converted to floats per mini-batch.
//!
//! The 250,000-image expanded training set therefore costs 196 MB rather than the 784 MB of f32
//! (or the book's pickle, which stores float32 pixels).

use std::ops::Range;

use crate::error::{Error, Result};

/// How pixel bytes become floats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scale {
    /// value / 255, so ink is exactly 1.0 (what most frameworks do; the default here).
    #[default]
    Div255,
    /// value / 256, as the book's `mnist.pkl.gz` stores pixels (float32, ink = 0.99609375).
    Div256,
}

/// A float type mini-batches can be filled with (f32 for training, f64 for gradient checks).
pub trait Element: Copy + Send + Sync + 'static {
    /// Zero.
    const ZERO: Self;
    /// One.
    const ONE: Self;
    /// A pixel byte as a float in [0, 1] under `scale`.
    fn from_pixel(v: u8, scale: Scale) -> Self;
}

// The same conversion for each float type: `From<u8>` is exact for both.
macro_rules! impl_element {
    ($($t:ty),*) => {$(
        impl Element for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn from_pixel(v: u8, scale: Scale) -> Self {
                match scale {
                    Scale::Div255 => <$t>::from(v) / 255.0,
                    Scale::Div256 => <$t>::from(v) / 256.0,
                }
            }
        }
    )*};
}

impl_element!(f32, f64);

/// Number of classes (the digits 0-9).
pub const CLASSES: usize = 10;

/// The one-hot vector of a digit: 1 at index `label`, 0 elsewhere (all zero if `label > 9`).
///
/// ```
/// use nndl_mnist::one_hot;
///
/// assert_eq!(one_hot::<f32>(3), [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
/// assert_eq!(one_hot::<f64>(10), [0.0; 10]);
/// ```
pub fn one_hot<T: Element>(label: u8) -> [T; CLASSES] {
    let mut v = [T::ZERO; CLASSES];
    if let Some(x) = v.get_mut(usize::from(label)) {
        *x = T::ONE;
    }
    v
}

/// Labelled images: `len()` images of `rows` x `cols` u8 pixels (0 = background) with labels 0-9,
/// and the scale their pixels become floats at.
///
/// ```
/// use nndl_mnist::{Dataset, Scale};
///
/// // Four 2x2 images; image i has every pixel 50 i and label i.
/// let pixels = (0..4u8).flat_map(|i| [50 * i; 4]).collect();
/// let data = Dataset::new(pixels, vec![0, 1, 2, 3], 2, 2)?;
/// assert_eq!((data.len(), data.pixels_per_image()), (4, 4));
/// assert_eq!(data.image(3), &[150; 4]);
///
/// // Subsets: the first n, a range, a split.
/// assert_eq!(data.take(2).labels(), &[0, 1]);
/// assert_eq!(data.slice(1..3).labels(), &[1, 2]);
/// let (train, held_out) = data.clone().split_at(3);
/// assert_eq!((train.len(), held_out.labels()), (3, &[3][..]));
/// assert_eq!(train.concat(&held_out)?, data);
///
/// // A mini-batch as floats (value / 255) and its one-hot targets.
/// let mut x = [0f32; 8];
/// data.fill_batch(&[3, 1], &mut x);
/// assert_eq!((&x[..4], x[4]), (&[150.0 / 255.0; 4][..], 50.0 / 255.0));
/// let mut y = [0f32; 20];
/// data.fill_one_hot(&[3, 1], &mut y);
/// assert_eq!((y[3], y[10 + 1], y.iter().sum::<f32>()), (1.0, 1.0, 2.0));
///
/// // The book's pickle scales by 256 instead.
/// data.with_scale(Scale::Div256).fill_batch(&[2], &mut x[..4]);
/// assert_eq!(x[0], 100.0 / 256.0);
///
/// assert!(Dataset::new(vec![0; 7], vec![0, 1], 2, 2).is_err()); // 7 pixels for 2 images
/// # Ok::<(), nndl_mnist::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
    scale: Scale,
}

impl Dataset {
    /// A dataset from pixel bytes (image after image, row-major) and labels, checked consistent.
    pub fn new(images: Vec<u8>, labels: Vec<u8>, rows: usize, cols: usize) -> Result<Self> {
        let invalid = |detail: String| Error::Invalid {
            what: "dataset",
            detail,
        };
        let per = rows
            .checked_mul(cols)
            .filter(|&p| p > 0)
            .ok_or_else(|| invalid(format!("images of {rows}x{cols} pixels")))?;
        if Some(images.len()) != labels.len().checked_mul(per) {
            return Err(invalid(format!(
                "{} pixel bytes for {} labels of {rows}x{cols} images",
                images.len(),
                labels.len()
            )));
        }
        if let Some(i) = labels.iter().position(|&l| l > 9) {
            return Err(invalid(format!(
                "label {} at record {i} is not a digit 0-9",
                labels[i]
            )));
        }
        Ok(Dataset {
            images,
            labels,
            rows,
            cols,
            scale: Scale::default(),
        })
    }

    /// Build from parts the caller has already made consistent (crate-internal, debug-checked).
    pub(crate) fn from_checked_parts(
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
    ) -> Self {
        debug_assert_eq!(images.len(), labels.len() * rows * cols);
        debug_assert!(labels.iter().all(|&l| l <= 9));
        Dataset {
            images,
            labels,
            rows,
            cols,
            scale: Scale::default(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Rows per image (28 for MNIST).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns per image (28 for MNIST).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Pixels per image, `rows * cols` (784 for MNIST).
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// All pixel bytes, image after image.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// All labels.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of image `i`, row-major. Panics if `i >= len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.images[i * n..(i + 1) * n]
    }

    /// The label of image `i`. Panics if `i >= len()`, like slice indexing.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// Iterate over `(image, label)` pairs.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], u8)> + '_ {
        self.images
            .chunks_exact(self.pixels_per_image())
            .zip(self.labels.iter().copied())
    }

    /// A copy of the records in `range` (e.g. `0..1000` for a quick run). Panics if out of range.
    pub fn slice(&self, range: Range<usize>) -> Dataset {
        let n = self.pixels_per_image();
        Dataset {
            images: self.images[range.start * n..range.end * n].to_vec(),
            labels: self.labels[range].to_vec(),
            rows: self.rows,
            cols: self.cols,
            scale: self.scale,
        }
    }

    /// The first `n` records (all of them if `n >= len()`).
    pub fn take(&self, n: usize) -> Dataset {
        self.slice(0..n.min(self.len()))
    }

    /// Split into the first `n` records and the rest. Panics if `n > len()`.
    pub fn split_at(self, n: usize) -> (Dataset, Dataset) {
        let Dataset {
            mut images,
            mut labels,
            rows,
            cols,
            scale,
        } = self;
        let rest_images = images.split_off(n * rows * cols);
        let rest_labels = labels.split_off(n);
        (
            Dataset {
                images,
                labels,
                rows,
                cols,
                scale,
            },
            Dataset {
                images: rest_images,
                labels: rest_labels,
                rows,
                cols,
                scale,
            },
        )
    }

    /// This dataset's records followed by `other`'s (the inverse of [`split_at`](Self::split_at);
    /// this one's scale). Errors if the image sizes differ.
    pub fn concat(&self, other: &Dataset) -> Result<Dataset> {
        if (self.rows, self.cols) != (other.rows, other.cols) {
            return Err(Error::Invalid {
                what: "dataset",
                detail: format!(
                    "cannot join {}x{} images to {}x{} ones",
                    other.rows, other.cols, self.rows, self.cols
                ),
            });
        }
        Ok(Dataset {
            images: [self.images(), other.images()].concat(),
            labels: [self.labels(), other.labels()].concat(),
            ..*self
        })
    }

    /// Give back the pixel bytes and labels.
    pub fn into_parts(self) -> (Vec<u8>, Vec<u8>) {
        (self.images, self.labels)
    }

    /// The same images and labels whose pixels become floats at `scale`.
    pub fn with_scale(mut self, scale: Scale) -> Dataset {
        self.scale = scale;
        self
    }

    /// The scale pixels become floats at ([`Scale::Div255`] unless set by
    /// [`with_scale`](Self::with_scale)).
    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// Fill `out` with the images at `indices` as floats at the set [`scale`](Self::scale)
    /// (value/255 by default), one image after another.
    ///
    /// `out.len()` must be `indices.len() * pixels_per_image()`; panics otherwise, or if an index
    /// is out of range (both are bugs in the caller, not in the data).
    pub fn fill_batch<T: Element>(&self, indices: &[usize], out: &mut [T]) {
        self.fill_batch_scaled(indices, out, self.scale);
    }

    /// [`fill_batch`](Self::fill_batch) with the pixel scale chosen (`Scale::Div256` is the book's).
    pub fn fill_batch_scaled<T: Element>(&self, indices: &[usize], out: &mut [T], scale: Scale) {
        self.fill_batch_with(indices, out, |p| T::from_pixel(p, scale));
    }

    /// Fill `out` with the images at `indices`, each pixel byte `p` becoming `convert(p)` (called
    /// once per byte value: a caller with its own float type or rounding brings it here).
    ///
    /// `out.len()` must be `indices.len() * pixels_per_image()`; panics otherwise, or if an index
    /// is out of range.
    pub fn fill_batch_with<T: Copy>(
        &self,
        indices: &[usize],
        out: &mut [T],
        convert: impl Fn(u8) -> T,
    ) {
        let n = self.pixels_per_image();
        assert_eq!(
            out.len(),
            indices.len() * n,
            "fill_batch: output holds {} values, {} images of {n} pixels need {}",
            out.len(),
            indices.len(),
            indices.len() * n
        );
        let table: [T; 256] = std::array::from_fn(|v| convert(v as u8));
        for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(n)) {
            for (d, &p) in dst.iter_mut().zip(self.image(i)) {
                *d = table[usize::from(p)];
            }
        }
    }

    /// Fill `out` with the one-hot targets of the records at `indices` (10 values per record).
    ///
    /// `out.len()` must be `indices.len() * 10`; panics otherwise or if an index is out of range.
    pub fn fill_one_hot<T: Element>(&self, indices: &[usize], out: &mut [T]) {
        assert_eq!(
            out.len(),
            indices.len() * CLASSES,
            "fill_one_hot: output holds {} values, {} records need {}",
            out.len(),
            indices.len(),
            indices.len() * CLASSES
        );
        for (&i, dst) in indices.iter().zip(out.chunks_exact_mut(CLASSES)) {
            dst.copy_from_slice(&one_hot::<T>(self.labels[i]));
        }
    }

    /// Fill `out` with the labels of the records at `indices`. Panics if the lengths differ.
    pub fn fill_labels(&self, indices: &[usize], out: &mut [u8]) {
        assert_eq!(out.len(), indices.len(), "fill_labels: length mismatch");
        for (&i, o) in indices.iter().zip(out.iter_mut()) {
            *o = self.labels[i];
        }
    }

    /// Number of records of each digit.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut c = [0usize; CLASSES];
        for &l in &self.labels {
            c[usize::from(l)] += 1;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        // Three 2x2 images.
        Dataset::new(
            vec![0, 255, 128, 1, 2, 3, 4, 5, 255, 255, 0, 0],
            vec![7, 0, 9],
            2,
            2,
        )
        .unwrap()
    }

    #[test]
    fn the_pixel_scale_travels_with_the_data() {
        let d = tiny().with_scale(Scale::Div256);
        let mut out = vec![0.0f32; 4];
        d.fill_batch(&[0], &mut out);
        assert_eq!(out, vec![0.0, 255.0 / 256.0, 0.5, 1.0 / 256.0]);
        assert_eq!(d.take(2).scale(), Scale::Div256);
        assert_eq!(d.slice(1..3).scale(), Scale::Div256);
        let (a, b) = d.clone().split_at(1);
        assert_eq!((a.scale(), b.scale()), (Scale::Div256, Scale::Div256));
        assert_eq!(tiny().scale(), Scale::Div255);
        tiny().fill_batch(&[0], &mut out);
        assert_eq!(out[1], 1.0);
    }

    #[test]
    fn accessors() {
        let d = tiny();
        assert_eq!(d.len(), 3);
        assert!(!d.is_empty());
        assert_eq!(d.image(1), &[2, 3, 4, 5]);
        assert_eq!(d.label(2), 9);
        assert_eq!(d.pixels_per_image(), 4);
        let pairs: Vec<_> = d.iter().collect();
        assert_eq!(pairs[2], (&[255u8, 255, 0, 0][..], 9));
        assert_eq!(d.slice(1..3).labels(), &[0, 9]);
        assert_eq!(d.slice(1..3).image(0), &[2, 3, 4, 5]);
        assert_eq!(d.take(10).len(), 3);
        let (a, b) = d.clone().split_at(1);
        assert_eq!((a.labels(), b.labels()), (&[7u8][..], &[0u8, 9][..]));
        assert_eq!(b.image(1), d.image(2));
        // Joining the halves gives back the whole, in order; other image sizes are refused.
        let joined = a.with_scale(Scale::Div256).concat(&b).unwrap();
        assert_eq!((joined.images(), joined.labels()), (d.images(), d.labels()));
        assert_eq!(joined.scale(), Scale::Div256);
        let other = Dataset::new(vec![0; 9], vec![1], 3, 3).unwrap();
        let err = d.concat(&other).unwrap_err().to_string();
        assert!(err.contains("3x3") && err.contains("2x2"), "{err}");
        let mut counts = [0; 10];
        counts[0] = 1;
        counts[7] = 1;
        counts[9] = 1;
        assert_eq!(d.class_counts(), counts);
    }

    #[test]
    fn new_rejects_inconsistent_parts() {
        assert!(Dataset::new(vec![0; 7], vec![1, 2], 2, 2).is_err());
        assert!(Dataset::new(vec![0; 8], vec![1, 10], 2, 2).is_err());
        assert!(Dataset::new(vec![], vec![], 0, 2).is_err());
        assert!(Dataset::new(vec![], vec![], 28, 28).unwrap().is_empty());
    }

    #[test]
    fn batches_are_scaled_per_request() {
        let d = tiny();
        let mut out = vec![-1.0f32; 8];
        d.fill_batch(&[2, 0], &mut out);
        assert_eq!(
            out,
            vec![1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 128.0 / 255.0, 1.0 / 255.0]
        );
        let mut out = vec![0.0f64; 4];
        d.fill_batch_scaled(&[0], &mut out, Scale::Div256);
        assert_eq!(out, vec![0.0, 255.0 / 256.0, 0.5, 1.0 / 256.0]);
    }

    #[test]
    fn one_hot_targets() {
        assert_eq!(one_hot::<f32>(3), [0., 0., 0., 1., 0., 0., 0., 0., 0., 0.]);
        assert_eq!(one_hot::<f64>(12), [0.0; 10]);
        let d = tiny();
        let mut out = vec![0.5f32; 20];
        d.fill_one_hot(&[2, 0], &mut out);
        let mut want = vec![0.0f32; 20];
        want[9] = 1.0;
        want[10 + 7] = 1.0;
        assert_eq!(out, want);
        let mut labels = [0u8; 2];
        d.fill_labels(&[1, 2], &mut labels);
        assert_eq!(labels, [0, 9]);
    }

    #[test]
    #[should_panic(expected = "fill_batch")]
    fn wrong_batch_buffer_panics_with_a_message() {
        tiny().fill_batch(&[0, 1], &mut [0.0f32; 4]);
    }
}
