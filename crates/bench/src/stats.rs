//! Small statistics for the figures: quantiles, a bootstrap interval for a
//! difference of medians, and the best single-request threshold classifier.

use rand::Rng;

/// The `q` quantile of sorted samples (nearest rank); 0 for none.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A 95 % interval for `median(a) - median(b)`, from 2,000 resamples.
pub fn bootstrap_interval(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut rng = rand::thread_rng();
    let mut resample = |from: &[f64]| {
        let mut drawn: Vec<f64> = (0..from.len())
            .map(|_| from[rng.gen_range(0..from.len())])
            .collect();
        drawn.sort_by(f64::total_cmp);
        quantile(&drawn, 0.5)
    };
    let mut differences: Vec<f64> = (0..2000).map(|_| resample(a) - resample(b)).collect();
    differences.sort_by(f64::total_cmp);
    (quantile(&differences, 0.025), quantile(&differences, 0.975))
}

/// The accuracy of the best rule "slower than t means class a" (or its
/// opposite), over every threshold t the samples suggest.
pub fn best_threshold_accuracy(a: &[f64], b: &[f64]) -> f64 {
    let total = (a.len() + b.len()) as f64;
    let mut best: f64 = 0.5;
    for &threshold in a.iter().chain(b) {
        let a_above = a.iter().filter(|&&t| t > threshold).count();
        let b_below = b.iter().filter(|&&t| t <= threshold).count();
        let accuracy = (a_above + b_below) as f64 / total;
        best = best.max(accuracy).max(1.0 - accuracy);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separable_samples_classify_perfectly_and_identical_ones_do_not() {
        let slow = [2.0, 2.1, 2.2, 2.3];
        let fast = [1.0, 1.1, 1.2, 1.3];
        assert!((best_threshold_accuracy(&slow, &fast) - 1.0).abs() < 1e-9);
        let same = [1.0, 2.0, 3.0, 4.0];
        assert!(best_threshold_accuracy(&same, &same) < 0.76);
        assert!((quantile(&[1.0, 2.0, 3.0], 0.5) - 2.0).abs() < 1e-9);
        let (low, high) = bootstrap_interval(&slow, &fast);
        assert!(low > 0.5 && high < 1.5, "{low} {high}");
    }
}
