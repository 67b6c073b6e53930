//! Baselines that need no learning library: the book's `mnist_average_darkness.py`.

use crate::dataset::{Dataset, CLASSES};
use crate::error::{Error, Result};

/// The book's average-darkness classifier: a digit is guessed by how much ink the image has.
///
/// Training computes, for each digit, the average total darkness (sum of pixel values) of its
/// training images; an image is classified as the digit whose average is nearest its own
/// darkness, ties going to the smallest digit (Python's `min` over the dict `{0: .., .., 9: ..}`,
/// whose small-int keys iterate in order). The book sums float32 pixels value/256; sums of u8
/// pixels here are the same numbers times 256, exactly (every partial sum is an integer below
/// 2^53 times a power of two), so every comparison and hence every guess is the same.
#[derive(Debug, Clone, PartialEq)]
pub struct AverageDarkness {
    /// Average darkness (in u8 pixel units) per digit; `None` for a digit absent from training,
    /// which the book's `defaultdict` never guesses either.
    averages: [Option<f64>; CLASSES],
}

/// Total darkness of an image: the sum of its pixel bytes.
pub fn darkness(image: &[u8]) -> u64 {
    image.iter().map(|&p| u64::from(p)).sum()
}

impl AverageDarkness {
    /// Learn the average darkness of each digit in `training` (the book uses the 50,000).
    pub fn train(training: &Dataset) -> Result<Self> {
        if training.is_empty() {
            return Err(Error::Invalid {
                what: "average-darkness training set",
                detail: "it is empty".to_string(),
            });
        }
        let mut totals = [0u64; CLASSES];
        let mut counts = [0u64; CLASSES];
        for (image, label) in training.iter() {
            totals[usize::from(label)] += darkness(image);
            counts[usize::from(label)] += 1;
        }
        let mut averages = [None; CLASSES];
        for d in 0..CLASSES {
            if counts[d] > 0 {
                averages[d] = Some(totals[d] as f64 / counts[d] as f64);
            }
        }
        Ok(AverageDarkness { averages })
    }

    /// The average darkness per digit (sum of u8 pixels; divide by 256 for the book's units).
    pub fn averages(&self) -> [Option<f64>; CLASSES] {
        self.averages
    }

    /// The digit whose average darkness is nearest that of `image` (smallest digit on ties).
    pub fn predict(&self, image: &[u8]) -> u8 {
        let d = darkness(image) as f64;
        let mut best: Option<(u8, f64)> = None;
        for (digit, avg) in self.averages.iter().enumerate() {
            if let Some(avg) = avg {
                let dist = (avg - d).abs();
                if best.is_none_or(|(_, b)| dist < b) {
                    best = Some((digit as u8, dist));
                }
            }
        }
        // train() guarantees at least one digit has an average.
        best.map_or(0, |(digit, _)| digit)
    }

    /// Number of records of `test` classified correctly.
    pub fn correct(&self, test: &Dataset) -> usize {
        test.iter()
            .filter(|(image, label)| self.predict(image) == *label)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::real_data;

    #[test]
    fn the_books_2225_of_10000() {
        let d = real_data();
        let model = AverageDarkness::train(&d.training).unwrap();
        assert_eq!(model.correct(&d.test), 2225);
    }

    #[test]
    fn nearest_average_wins_and_ties_go_to_the_smaller_digit() {
        // Digit 3: darkness 10 and 30 (average 20); digit 5: darkness 40 (average 40).
        let d = Dataset::new(vec![10, 30, 40], vec![3, 3, 5], 1, 1).unwrap();
        let m = AverageDarkness::train(&d).unwrap();
        let mut want = [None; CLASSES];
        want[3] = Some(20.0);
        want[5] = Some(40.0);
        assert_eq!(m.averages(), want);
        assert_eq!(m.predict(&[0]), 3);
        assert_eq!(m.predict(&[29]), 3);
        assert_eq!(m.predict(&[30]), 3); // tie: 10 from both, the smaller digit wins
        assert_eq!(m.predict(&[31]), 5);
        assert_eq!(m.predict(&[255]), 5);
        let test = Dataset::new(vec![25, 31, 0], vec![3, 3, 5], 1, 1).unwrap();
        assert_eq!(m.correct(&test), 1);
        assert!(AverageDarkness::train(&Dataset::new(vec![], vec![], 1, 1).unwrap()).is_err());
    }
}
