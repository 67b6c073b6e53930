//! Combining the predictions of several nets (network3.py's majority vote of chapter 6, the
//! modern recipe's mean of probabilities) and scoring them against the labels.

/// Majority vote of the nets' predicted digits for `n` images; a tie goes to the smallest
/// digit, so the vote does not depend on the order of the nets.
pub fn vote(predictions: &[Vec<usize>], n: usize) -> Vec<usize> {
    (0..n)
        .map(|i| {
            let mut counts = [0usize; 10];
            for p in predictions {
                counts[p[i].min(9)] += 1;
            }
            let max = counts.iter().copied().max().unwrap_or(0);
            counts.iter().position(|&c| c == max).unwrap_or(0)
        })
        .collect()
}

/// How many of `predicted` match `data`'s labels.
pub fn correct(predicted: &[usize], data: &mnist::Dataset) -> usize {
    predicted
        .iter()
        .enumerate()
        .filter(|(i, &y)| y == usize::from(data.label(*i)))
        .count()
}

/// The accuracy of class probabilities `p` (rows of 10) against `data`'s labels: each row's
/// first largest probability is its prediction.
pub fn accuracy_of_probabilities(p: &[f64], data: &mnist::Dataset) -> f64 {
    let predicted: Vec<usize> = p
        .chunks_exact(10)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |b, (k, &v)| if v > row[b] { k } else { b })
        })
        .collect();
    correct(&predicted, data) as f64 / data.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn vote_takes_the_majority_and_the_smallest_digit_on_ties() {
        let p = vec![vec![1, 2, 3], vec![1, 5, 4], vec![7, 5, 9]];
        assert_eq!(super::vote(&p, 3), vec![1, 5, 3]);
    }
}
