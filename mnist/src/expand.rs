//! The book's `expand_mnist.py`: each training image, then its four 1-pixel shifts, shuffled.
//!
//! For each image the book appends the image itself, then, for
//! `(d, axis, index_position, index)` in
//! `[(1, 0, "first", 0), (-1, 0, "first", 27), (1, 1, "last", 0), (-1, 1, "last", 27)]`,
//! `np.roll(image, d, axis)` with row `index` (axis 0) or column `index` (axis 1) zeroed: that is,
//! shifted down (row 0 cleared), up (last row cleared), right (column 0 cleared) and left (last
//! column cleared). The 5n pairs are then shuffled.
//!
//! The book shuffles with Python's unseeded `random.shuffle`; here the shuffle is seeded:
//! a Fisher-Yates shuffle of the record order driven by `rand_pcg::Pcg64::seed_from_u64(seed)`
//! (for i from 5n-1 down to 1, swap i with `rng.random_range(0..=i)` drawn as u64), so the same
//! seed always gives the same file.

use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

use crate::dataset::Dataset;

/// Records produced per input image: the image and its four shifts.
pub const VARIANTS: usize = 5;

/// The book's expansion of `train` (50,000 images give 250,000), shuffled with `seed`.
///
/// ```
/// use nndl_mnist::{expand, expand_unshuffled, Dataset};
///
/// // One 28x28 image with a single ink pixel at row 5, column 7.
/// let mut pixels = vec![0u8; 28 * 28];
/// pixels[5 * 28 + 7] = 255;
/// let one = Dataset::new(pixels, vec![4], 28, 28)?;
///
/// // The image, then shifted down, up, right and left by a pixel.
/// let ink = |d: &Dataset, i: usize| d.image(i).iter().position(|&p| p == 255).map(|k| (k / 28, k % 28));
/// let plain = expand_unshuffled(&one);
/// let at: Vec<_> = (0..5).map(|i| ink(&plain, i).unwrap()).collect();
/// assert_eq!(at, [(5, 7), (6, 7), (4, 7), (5, 8), (5, 6)]);
///
/// // Shuffled with a seed: the same five records in a seeded order, labels kept.
/// let shuffled = expand(&one, 1);
/// assert_eq!((shuffled.len(), shuffled.labels()), (5, &[4; 5][..]));
/// let mut seen: Vec<_> = (0..5).map(|i| ink(&shuffled, i).unwrap()).collect();
/// seen.sort();
/// let mut want = at.clone();
/// want.sort();
/// assert_eq!(seen, want);
/// assert_eq!(expand(&one, 1), shuffled); // same seed, same file
/// # Ok::<(), nndl_mnist::Error>(())
/// ```
pub fn expand(train: &Dataset, seed: u64) -> Dataset {
    expand_with_progress(train, seed, |_| {})
}

/// [`expand`], calling `progress(images_done)` after every 1,000 input images (as the book
/// prints "Expanding image number 1000"...) and at the end.
pub fn expand_with_progress(train: &Dataset, seed: u64, progress: impl FnMut(usize)) -> Dataset {
    let order = shuffled_order(train.len() * VARIANTS, seed);
    expand_in_order(train, &order, progress)
}

/// The expansion in the book's order before shuffling: image 0, its 4 shifts, image 1, ...
pub fn expand_unshuffled(train: &Dataset) -> Dataset {
    let order: Vec<usize> = (0..train.len() * VARIANTS).collect();
    expand_in_order(train, &order, |_| {})
}

/// A seeded Fisher-Yates permutation of `0..n` (see the module docs).
pub fn shuffled_order(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Pcg64::seed_from_u64(seed);
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i as u64) as usize;
        order.swap(i, j);
    }
    order
}

/// Output record `p` is unshuffled record `order[p]`, i.e. variant `order[p] % 5` of input image
/// `order[p] / 5`; written straight into place, so only the output is allocated.
fn expand_in_order(train: &Dataset, order: &[usize], mut progress: impl FnMut(usize)) -> Dataset {
    let (rows, cols) = (train.rows(), train.cols());
    let n = rows * cols;
    let total = order.len();
    // Where each unshuffled record goes, so we can walk the input in order (for progress).
    let mut position = vec![0usize; total];
    for (p, &k) in order.iter().enumerate() {
        position[k] = p;
    }
    let mut images = vec![0u8; total * n];
    let mut labels = vec![0u8; total];
    for i in 0..train.len() {
        let src = train.image(i);
        for v in 0..VARIANTS {
            let p = position[i * VARIANTS + v];
            shift_into(src, rows, cols, v, &mut images[p * n..(p + 1) * n]);
            labels[p] = train.label(i);
        }
        if (i + 1) % 1000 == 0 || i + 1 == train.len() {
            progress(i + 1);
        }
    }
    // rows x cols pixels per record and labels copied from a valid dataset: consistent.
    Dataset::from_checked_parts(images, labels, rows, cols).with_scale(train.scale())
}

/// Write variant `v` of `src` (0 = itself, 1 = down, 2 = up, 3 = right, 4 = left) into `dst`,
/// which must be zeroed.
fn shift_into(src: &[u8], rows: usize, cols: usize, v: usize, dst: &mut [u8]) {
    match v {
        0 => dst.copy_from_slice(src),
        // np.roll(image, 1, 0), then row 0 zeroed: new[r] = old[r - 1].
        1 => dst[cols..].copy_from_slice(&src[..(rows - 1) * cols]),
        // np.roll(image, -1, 0), then row 27 zeroed: new[r] = old[r + 1].
        2 => dst[..(rows - 1) * cols].copy_from_slice(&src[cols..]),
        // np.roll(image, 1, 1), then column 0 zeroed: new[r][c] = old[r][c - 1].
        3 => {
            for (d, s) in dst.chunks_exact_mut(cols).zip(src.chunks_exact(cols)) {
                d[1..].copy_from_slice(&s[..cols - 1]);
            }
        }
        // np.roll(image, -1, 1), then column 27 zeroed: new[r][c] = old[r][c + 1].
        _ => {
            for (d, s) in dst.chunks_exact_mut(cols).zip(src.chunks_exact(cols)) {
                d[..cols - 1].copy_from_slice(&s[1..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::real_data;
    use std::collections::HashMap;

    /// numpy's `np.roll(image, d, axis)` on a rows x cols image, literally.
    fn np_roll(img: &[u8], rows: usize, cols: usize, d: isize, axis: usize) -> Vec<u8> {
        let mut out = vec![0u8; rows * cols];
        for r in 0..rows {
            for c in 0..cols {
                let (nr, nc) = if axis == 0 {
                    ((r as isize + d).rem_euclid(rows as isize) as usize, c)
                } else {
                    (r, (c as isize + d).rem_euclid(cols as isize) as usize)
                };
                out[nr * cols + nc] = img[r * cols + c];
            }
        }
        out
    }

    /// The book's loop body, transcribed: the image, then the four rolled-and-zeroed copies.
    fn book_expansion(img: &[u8]) -> Vec<Vec<u8>> {
        let mut v = vec![img.to_vec()];
        for (d, axis, first, index) in [
            (1, 0, true, 0),
            (-1, 0, true, 27),
            (1, 1, false, 0),
            (-1, 1, false, 27),
        ] {
            let mut new = np_roll(img, 28, 28, d, axis);
            for k in 0..28 {
                if first {
                    new[index * 28 + k] = 0;
                } else {
                    new[k * 28 + index] = 0;
                }
            }
            v.push(new);
        }
        v
    }

    #[test]
    fn matches_the_books_roll_and_zero_on_real_images() {
        let train = real_data().training.take(20);
        let ex = expand_unshuffled(&train);
        assert_eq!(ex.len(), 100);
        for i in 0..20 {
            let want = book_expansion(train.image(i));
            for (v, w) in want.iter().enumerate() {
                assert_eq!(ex.image(i * 5 + v), &w[..], "image {i} variant {v}");
                assert_eq!(ex.label(i * 5 + v), train.label(i));
            }
        }
    }

    #[test]
    fn each_shift_moves_every_ink_pixel_by_one_and_clears_the_wrapped_edge() {
        let train = real_data().training.take(10);
        let ex = expand_unshuffled(&train);
        // (dr, dc) of variants 1..=4: down, up, right, left.
        let moves = [(1isize, 0isize), (-1, 0), (0, 1), (0, -1)];
        for i in 0..train.len() {
            let img = train.image(i);
            assert_eq!(ex.image(i * 5), img);
            for (v, (dr, dc)) in moves.iter().enumerate() {
                let out = ex.image(i * 5 + v + 1);
                let mut moved = 0;
                for r in 0..28isize {
                    for c in 0..28isize {
                        let (nr, nc) = (r + dr, c + dc);
                        let inside = (0..28).contains(&nr) && (0..28).contains(&nc);
                        let p = img[(r * 28 + c) as usize];
                        if inside {
                            // Every pixel (ink or not) lands exactly one step over.
                            assert_eq!(out[(nr * 28 + nc) as usize], p, "img {i} v {v} ({r},{c})");
                            moved += usize::from(p > 0);
                        }
                    }
                }
                // The edge the roll wrapped into is clear, so no other ink exists.
                let ink_out = out.iter().filter(|&&p| p > 0).count();
                assert_eq!(ink_out, moved, "img {i} variant {v}");
                let cleared: Vec<u8> = match v {
                    0 => out[..28].to_vec(),
                    1 => out[27 * 28..].to_vec(),
                    2 => out.iter().step_by(28).copied().collect(),
                    _ => out.iter().skip(27).step_by(28).copied().collect(),
                };
                assert_eq!(cleared, vec![0u8; 28], "img {i} variant {v}");
            }
        }
        // The test would be vacuous on blank images: check there is ink that moves off-centre.
        assert!(train.image(0).iter().filter(|&&p| p > 0).count() > 50);
    }

    #[test]
    fn ink_on_the_edges_is_dropped_not_wrapped() {
        // A 28x28 image with ink on all four borders.
        let mut img = vec![0u8; 784];
        for k in 0..28 {
            img[k] = 1; // top row
            img[27 * 28 + k] = 2; // bottom row
            img[k * 28] = 3; // left column
            img[k * 28 + 27] = 4; // right column
        }
        let d = Dataset::new(img.clone(), vec![6], 28, 28).unwrap();
        let ex = expand_unshuffled(&d);
        for (v, want) in book_expansion(&img).iter().enumerate() {
            assert_eq!(ex.image(v), &want[..], "variant {v}");
        }
        assert_eq!(ex.labels(), &[6; 5]);
    }

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let a = shuffled_order(1000, 7);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<usize>>());
        assert_eq!(a, shuffled_order(1000, 7));
        assert_ne!(a, shuffled_order(1000, 8));
        assert_ne!(a, sorted);
    }

    #[test]
    fn full_expansion_of_the_real_training_set() {
        let train = &real_data().training;
        let mut calls = 0;
        let mut last = 0;
        let ex = expand_with_progress(train, 42, |done| {
            calls += 1;
            last = done;
        });
        assert_eq!((calls, last), (50, 50_000));
        assert_eq!(ex.len(), 250_000);
        assert_eq!(ex.images().len(), 250_000 * 784);
        let counts = train.class_counts().map(|c| c * 5);
        assert_eq!(ex.class_counts(), counts);

        // Labels follow their images: the shuffled records are exactly the unshuffled
        // (image, label) pairs, as a multiset.
        let plain = expand_unshuffled(train);
        assert_ne!(plain.labels(), ex.labels(), "not shuffled");
        let mut bag: HashMap<(&[u8], u8), i32> = HashMap::with_capacity(250_000);
        for pair in plain.iter() {
            *bag.entry(pair).or_default() += 1;
        }
        for pair in ex.iter() {
            let n = bag
                .get_mut(&pair)
                .expect("a record the unshuffled expansion lacks");
            *n -= 1;
        }
        assert!(bag.values().all(|&n| n == 0));

        // Same seed, same bytes; another seed, another order.
        let small = train.take(2000);
        assert_eq!(expand(&small, 3), expand(&small, 3));
        assert_ne!(expand(&small, 3).images(), expand(&small, 4).images());
    }
}
