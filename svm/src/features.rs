//! Feature vectors in LIBSVM's sparse layout, and labelled training problems.
//!
//! LIBSVM takes each sample as an array of `(index, value)` nodes with strictly increasing
//! 1-based indices, zeros left out, ended by a node of index -1. Storing MNIST that way pays off:
//! about 81% of the book's pixels are zero, so a kernel evaluation touches ~150 nodes, not 784.
//!
//! LIBSVM's kernels walk two such rows in step, and where the rows hold different indices the
//! walk's branch is unpredictable. [`ExplicitZeros`] stores the pixels that are ink in many
//! images even where they are zero, so most rows share those indices and the walk runs in step:
//! ~25% faster kernels on MNIST (measured here on a few thousand images; less on 50,000, where
//! the larger rows cost memory traffic), with the same result to the bit, since adding `0 * x`
//! or `(0 - 0)^2` to a sum of non-negative terms changes nothing.

use std::os::raw::c_int;

use libsvm_sys::svm_node;
use mnist::{Dataset, Element, Scale};

use crate::error::{Error, Result};

/// The index of the node that ends every row.
pub(crate) const END: c_int = -1;

const TERMINATOR: svm_node = svm_node {
    index: END,
    value: 0.0,
};

/// Rows of sparse feature vectors, stored contiguously in LIBSVM's node layout.
#[derive(Debug, Clone, Default)]
pub struct Features {
    /// Every row's nodes followed by its terminator, row after row.
    nodes: Vec<svm_node>,
    /// Where each row starts in `nodes`.
    starts: Vec<usize>,
}

impl Features {
    /// No rows.
    pub fn new() -> Self {
        Self::default()
    }

    /// No rows, with room for `rows` rows holding `values` stored values in all.
    pub fn with_capacity(rows: usize, values: usize) -> Self {
        Features {
            nodes: Vec::with_capacity(values + rows),
            starts: Vec::with_capacity(rows),
        }
    }

    /// One row per image of `images`, pixels scaled by `scale` (the book's data is
    /// [`Scale::Div256`]); feature `i + 1` is pixel `i`, and zero pixels are left out.
    pub fn from_images(images: &Dataset, scale: Scale) -> Self {
        Self::from_images_with(images, scale, &ExplicitZeros::none())
    }

    /// [`Features::from_images`], but the pixels of `zeros` are stored even where they are zero
    /// (faster kernels, identical results: see [`ExplicitZeros`]).
    pub fn from_images_with(images: &Dataset, scale: Scale, zeros: &ExplicitZeros) -> Self {
        let stored = images
            .images()
            .chunks(images.pixels_per_image().max(1))
            .map(|img| {
                img.iter()
                    .enumerate()
                    .filter(|&(i, &p)| p != 0 || zeros.keeps(i))
                    .count()
            })
            .sum();
        let mut f = Self::with_capacity(images.len(), stored);
        for i in 0..images.len() {
            f.push_pixels_with(images.image(i), scale, zeros);
        }
        f
    }

    /// Append an image: feature `i + 1` is `pixels[i]` scaled by `scale`, zero pixels left out.
    pub fn push_pixels(&mut self, pixels: &[u8], scale: Scale) {
        self.push_pixels_with(pixels, scale, &ExplicitZeros::none());
    }

    /// [`Features::push_pixels`], storing the pixels of `zeros` even where they are zero.
    pub fn push_pixels_with(&mut self, pixels: &[u8], scale: Scale, zeros: &ExplicitZeros) {
        self.starts.push(self.nodes.len());
        for (i, &p) in pixels.iter().enumerate() {
            if p != 0 || zeros.keeps(i) {
                self.nodes.push(svm_node {
                    index: pixel_index(i),
                    value: f64::from_pixel(p, scale),
                });
            }
        }
        self.nodes.push(TERMINATOR);
    }

    /// Append a dense row: feature `i + 1` is the `i`-th value; zeros are left out.
    ///
    /// Fails (adding nothing) on a non-finite value or a row longer than `i32::MAX` features.
    pub fn push_dense<I: IntoIterator<Item = f64>>(&mut self, values: I) -> Result<()> {
        self.push_sparse(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| (u32::try_from(i + 1).unwrap_or(u32::MAX), v)),
        )
    }

    /// Append a sparse row of `(index, value)` pairs, indices 1-based and strictly increasing
    /// (LIBSVM's convention); zero values are left out.
    ///
    /// Fails (adding nothing) on an index of 0 or above `i32::MAX`, indices out of order, or a
    /// non-finite value.
    pub fn push_sparse<I: IntoIterator<Item = (u32, f64)>>(&mut self, row: I) -> Result<()> {
        let start = self.nodes.len();
        let row_no = self.starts.len();
        let mut last = 0u32;
        for (index, value) in row {
            let problem = if index == 0 {
                Some("feature index 0: indices start at 1".to_string())
            } else if c_int::try_from(index).is_err() {
                Some(format!("feature index {index} exceeds i32::MAX"))
            } else if index <= last {
                Some(format!(
                    "feature index {index} after {last}: indices must increase strictly"
                ))
            } else if !value.is_finite() {
                Some(format!("feature {index} has the non-finite value {value}"))
            } else {
                None
            };
            if let Some(detail) = problem {
                self.nodes.truncate(start);
                return Err(Error::InvalidFeatures {
                    row: row_no,
                    detail,
                });
            }
            last = index;
            if value != 0.0 {
                self.nodes.push(svm_node {
                    index: index as c_int,
                    value,
                });
            }
        }
        self.starts.push(start);
        self.nodes.push(TERMINATOR);
        Ok(())
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Number of stored values over all rows (the non-zeros, plus any explicit zeros).
    pub fn stored_values(&self) -> usize {
        self.nodes.len() - self.starts.len()
    }

    /// The stored `(index, value)` pairs of row `i` (its non-zeros, plus any explicit zeros), in
    /// increasing index order.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn row(&self, i: usize) -> impl ExactSizeIterator<Item = (u32, f64)> + '_ {
        let nodes = self.row_nodes(i);
        nodes[..nodes.len() - 1]
            .iter()
            .map(|n| (n.index as u32, n.value))
    }

    /// scikit-learn's `gamma="scale"` for these rows taken as `n_features`-dimensional dense
    /// vectors: `1 / (n_features * variance of all values)`, zeros included. `None` when the
    /// variance is zero (or there are no rows).
    pub fn gamma_scale(&self, n_features: usize) -> Option<f64> {
        let count = (self.len() * n_features) as f64;
        if count == 0.0 {
            return None;
        }
        let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
        for n in &self.nodes {
            if n.index != END {
                sum += n.value;
                sum_sq += n.value * n.value;
            }
        }
        let mean = sum / count;
        let variance = sum_sq / count - mean * mean;
        (variance > 0.0).then(|| 1.0 / (n_features as f64 * variance))
    }

    /// Row `i`'s nodes including its terminator.
    pub(crate) fn row_nodes(&self, i: usize) -> &[svm_node] {
        let start = self.starts[i];
        let end = self.starts.get(i + 1).copied().unwrap_or(self.nodes.len());
        &self.nodes[start..end]
    }
}

/// The pixels to store even where they are zero.
///
/// LIBSVM's kernels walk two sparse rows in step, and where the rows hold different indices
/// the walk's branch is unpredictable; storing the frequently inked pixels in every row makes
/// most rows share those indices. Adding `0 * x` or `(0 - 0)^2` to a kernel's sum of
/// non-negative terms changes no bit, so models and predictions stay the same.
///
/// Which pixels does not change any result, only speed; [`ExplicitZeros::frequent_pixels`]
/// with a fraction around 0.4 (about 230 of MNIST's 784 pixels, against ~150 non-zeros per
/// image) made LIBSVM's kernels ~25% faster here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExplicitZeros {
    /// `keep[i]`: store pixel `i` (feature `i + 1`) always.
    keep: Vec<bool>,
}

impl ExplicitZeros {
    /// Store no zeros: plain sparse rows.
    pub fn none() -> Self {
        Self::default()
    }

    /// The pixels that are non-zero in at least `fraction` of `images` (none if `fraction`
    /// is above 1 or there are no images).
    pub fn frequent_pixels(images: &Dataset, fraction: f64) -> Self {
        let width = images.pixels_per_image();
        let mut counts = vec![0usize; width];
        for i in 0..images.len() {
            for (c, &p) in counts.iter_mut().zip(images.image(i)) {
                *c += usize::from(p != 0);
            }
        }
        let n = images.len() as f64;
        Self::pixels(
            counts
                .iter()
                .enumerate()
                .filter(|&(_, &c)| !images.is_empty() && c as f64 >= fraction * n)
                .map(|(i, _)| i),
        )
    }

    /// Exactly these pixels (0-based positions; equal sets compare equal).
    pub fn pixels(positions: impl IntoIterator<Item = usize>) -> Self {
        let mut keep = Vec::new();
        for i in positions {
            if keep.len() <= i {
                keep.resize(i + 1, false);
            }
            keep[i] = true;
        }
        ExplicitZeros { keep }
    }

    /// How many pixels are stored always.
    pub fn count(&self) -> usize {
        self.keep.iter().filter(|&&k| k).count()
    }

    fn keeps(&self, i: usize) -> bool {
        self.keep.get(i).copied().unwrap_or(false)
    }
}

/// LIBSVM's 1-based feature index of pixel `i` (a 28x28 image has 784 pixels, far below i32::MAX).
fn pixel_index(i: usize) -> c_int {
    c_int::try_from(i + 1).expect("image wider than i32::MAX pixels")
}

/// A labelled training set: feature rows and one class label per row.
#[derive(Debug, Clone)]
pub struct Problem {
    features: Features,
    labels: Vec<i32>,
}

impl Problem {
    /// Rows and their labels; fails if the counts differ, there are no rows, or there are more
    /// rows than LIBSVM can index (`i32::MAX`).
    pub fn new(features: Features, labels: Vec<i32>) -> Result<Self> {
        if features.len() != labels.len() {
            return Err(Error::InvalidProblem(format!(
                "{} feature rows but {} labels",
                features.len(),
                labels.len()
            )));
        }
        if features.is_empty() {
            return Err(Error::InvalidProblem("no training rows".into()));
        }
        if c_int::try_from(features.len()).is_err() {
            return Err(Error::InvalidProblem(format!(
                "{} rows: LIBSVM indexes at most i32::MAX",
                features.len()
            )));
        }
        Ok(Problem { features, labels })
    }

    /// The images of `data` (see [`Features::from_images`]) labelled by their digits.
    pub fn from_images(data: &Dataset, scale: Scale) -> Result<Self> {
        let labels = data.labels().iter().map(|&l| i32::from(l)).collect();
        Self::new(Features::from_images(data, scale), labels)
    }

    /// The feature rows.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// The labels, one per row.
    pub fn labels(&self) -> &[i32] {
        &self.labels
    }

    /// Number of rows (never zero).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Always false: a problem has at least one row.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The distinct labels in LIBSVM's order: by first occurrence, except that a two-class
    /// problem labelled -1 and +1 puts +1 first.
    pub fn classes(&self) -> Vec<i32> {
        group_classes(&self.labels).0
    }
}

/// LIBSVM's `svm_group_classes`: the distinct labels in its order and, per class, the rows of
/// that class in their original order.
pub(crate) fn group_classes(labels: &[i32]) -> (Vec<i32>, Vec<Vec<usize>>) {
    let mut classes: Vec<i32> = Vec::new();
    let mut members: Vec<Vec<usize>> = Vec::new();
    for (row, &label) in labels.iter().enumerate() {
        match classes.iter().position(|&c| c == label) {
            Some(k) => members[k].push(row),
            None => {
                classes.push(label);
                members.push(vec![row]);
            }
        }
    }
    if classes == [-1, 1] {
        classes.swap(0, 1);
        members.swap(0, 1);
    }
    (classes, members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_become_one_based_sparse_nodes() {
        let mut f = Features::new();
        f.push_pixels(&[0, 128, 0, 255], Scale::Div256);
        f.push_pixels(&[0, 0, 0, 0], Scale::Div256);
        assert_eq!(f.len(), 2);
        assert_eq!(f.stored_values(), 2);
        assert_eq!(
            f.row(0).collect::<Vec<_>>(),
            vec![(2, 0.5), (4, 255.0 / 256.0)]
        );
        assert_eq!(f.row(1).count(), 0);
        assert_eq!(f.row_nodes(1).len(), 1);
        assert_eq!(f.row_nodes(1)[0].index, END);
    }

    #[test]
    fn explicit_zeros_are_stored_where_asked() {
        let zeros = ExplicitZeros::pixels([0, 2]);
        assert_eq!(zeros.count(), 2);
        let mut f = Features::new();
        f.push_pixels_with(&[0, 128, 0, 255], Scale::Div256, &zeros);
        assert_eq!(
            f.row(0).collect::<Vec<_>>(),
            vec![(1, 0.0), (2, 0.5), (3, 0.0), (4, 255.0 / 256.0)]
        );
        // Pixels 0 and 1 are ink in 2 of 3 images, pixel 2 in 1 of 3, pixel 3 in none.
        let d = Dataset::new(
            vec![1, 1, 0, 0, 1, 0, 9, 0, 0, 1, 0, 0],
            vec![0, 1, 2],
            2,
            2,
        )
        .unwrap();
        assert_eq!(
            ExplicitZeros::frequent_pixels(&d, 0.5),
            ExplicitZeros::pixels([0, 1])
        );
        assert_eq!(ExplicitZeros::frequent_pixels(&d, 0.3).count(), 3);
        assert_eq!(ExplicitZeros::frequent_pixels(&d, 1.5).count(), 0);
        let all = Features::from_images_with(&d, Scale::Div255, &ExplicitZeros::pixels([0, 1]));
        assert_eq!(all.stored_values(), 2 + 3 + 2);
        assert_eq!(
            all.row(1).collect::<Vec<_>>(),
            vec![(1, 1.0 / 255.0), (2, 0.0), (3, 9.0 / 255.0)]
        );
        assert_eq!(
            all.row(2).collect::<Vec<_>>(),
            vec![(1, 0.0), (2, 1.0 / 255.0)]
        );
    }

    #[test]
    fn sparse_rows_are_validated_and_a_bad_row_adds_nothing() {
        let mut f = Features::new();
        f.push_sparse([(1, 1.0), (3, 0.0), (7, -2.0)]).unwrap();
        assert_eq!(f.row(0).collect::<Vec<_>>(), vec![(1, 1.0), (7, -2.0)]);
        for (bad, needle) in [
            (vec![(0u32, 1.0)], "index 0"),
            (vec![(2, 1.0), (2, 1.0)], "increase strictly"),
            (vec![(3, 1.0), (2, 1.0)], "increase strictly"),
            (vec![(1, f64::NAN)], "non-finite"),
            (vec![(1, 1.0), (u32::MAX, 1.0)], "i32::MAX"),
        ] {
            let err = f.push_sparse(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
            assert!(err.contains("row 1"), "{err}");
        }
        assert_eq!(f.len(), 1);
        assert_eq!(f.stored_values(), 2);
        f.push_dense([0.0, 0.5, 0.0]).unwrap();
        assert_eq!(f.row(1).collect::<Vec<_>>(), vec![(2, 0.5)]);
    }

    #[test]
    fn gamma_scale_is_one_over_features_times_variance() {
        // Dense rows [1, 0] and [3, 0]: values 1, 0, 3, 0, mean 1, variance (0+1+4+1)/4 = 1.5.
        let mut f = Features::new();
        f.push_dense([1.0, 0.0]).unwrap();
        f.push_dense([3.0, 0.0]).unwrap();
        let g = f.gamma_scale(2).unwrap();
        assert!((g - 1.0 / 3.0).abs() < 1e-15, "{g}");
        assert_eq!(Features::new().gamma_scale(2), None);
    }

    #[test]
    fn problems_check_their_shape() {
        let mut f = Features::new();
        f.push_dense([1.0]).unwrap();
        let e = Problem::new(f.clone(), vec![1, 2]).unwrap_err().to_string();
        assert!(e.contains("1 feature rows but 2 labels"), "{e}");
        let e = Problem::new(Features::new(), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no training rows"), "{e}");
        assert!(Problem::new(f, vec![4]).is_ok());
    }

    #[test]
    fn classes_follow_libsvm_order() {
        assert_eq!(group_classes(&[3, 1, 3, 2]).0, vec![3, 1, 2]);
        assert_eq!(
            group_classes(&[3, 1, 3, 2]).1,
            vec![vec![0, 2], vec![1], vec![3]]
        );
        // LIBSVM's one exception: -1/+1 problems put +1 first.
        let (c, m) = group_classes(&[-1, 1, -1]);
        assert_eq!(c, vec![1, -1]);
        assert_eq!(m, vec![vec![1], vec![0, 2]]);
        assert_eq!(group_classes(&[1, -1]).0, vec![1, -1]);
    }
}
