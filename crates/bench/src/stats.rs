//! Small statistics for the figures: quantiles, a bootstrap interval for a
//! difference of medians, and the best single-request threshold classifier
//! with what it reaches by chance.

use rand::seq::SliceRandom;
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
/// opposite), over every threshold t the samples suggest. The threshold is
/// chosen on the samples it is scored on, so even two samples of one
/// distribution score above 50 % ([`chance_accuracy`]).
pub fn best_threshold_accuracy(a: &[f64], b: &[f64]) -> f64 {
    best_of_sorted(&by_time(a, b), a.len())
}

/// Both samples' times in one ascending list, `true` for a time of `a`.
fn by_time(a: &[f64], b: &[f64]) -> Vec<(f64, bool)> {
    let mut labelled: Vec<(f64, bool)> = a
        .iter()
        .map(|&t| (t, true))
        .chain(b.iter().map(|&t| (t, false)))
        .collect();
    labelled.sort_by(|x, y| x.0.total_cmp(&y.0));
    labelled
}

/// [`best_threshold_accuracy`] of samples sorted by time, `true` for class a.
fn best_of_sorted(labelled: &[(f64, bool)], a_count: usize) -> f64 {
    let total = labelled.len() as f64;
    let (mut a_at_or_below, mut b_at_or_below) = (0, 0);
    let mut best: f64 = 0.5;
    for (i, &(time, is_a)) in labelled.iter().enumerate() {
        if is_a {
            a_at_or_below += 1;
        } else {
            b_at_or_below += 1;
        }
        // A threshold sits after the last sample of equal time.
        if labelled.get(i + 1).is_some_and(|next| next.0 == time) {
            continue;
        }
        let accuracy = ((a_count - a_at_or_below) + b_at_or_below) as f64 / total;
        best = best.max(accuracy).max(1.0 - accuracy);
    }
    best
}

/// What [`best_threshold_accuracy`] reaches by chance on these samples: its
/// 95th percentile over 1,000 random relabellings of the same times (a
/// permutation test). A figure above it is unlikely to be noise.
pub fn chance_accuracy(a: &[f64], b: &[f64]) -> f64 {
    let mut rng = rand::thread_rng();
    let mut labelled = by_time(a, b);
    let mut labels: Vec<bool> = labelled.iter().map(|&(_, is_a)| is_a).collect();
    let mut reached: Vec<f64> = (0..1000)
        .map(|_| {
            labels.shuffle(&mut rng);
            for (sample, &is_a) in labelled.iter_mut().zip(&labels) {
                sample.1 = is_a;
            }
            best_of_sorted(&labelled, a.len())
        })
        .collect();
    reached.sort_by(f64::total_cmp);
    quantile(&reached, 0.95)
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

    /// The classifier as first written: every sample's time as a threshold,
    /// each counted over all samples.
    fn by_every_threshold(a: &[f64], b: &[f64]) -> f64 {
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

    /// `n` times on a grid of tenths from `shift` up, so that ties occur.
    fn on_a_grid(rng: &mut impl Rng, n: usize, shift: u32) -> Vec<f64> {
        (0..n)
            .map(|_| f64::from(rng.gen_range(0..20) + shift) / 10.0)
            .collect()
    }

    /// `n` times spread evenly over 3.0–3.5 ms, `shift` later.
    fn spread(rng: &mut impl Rng, n: usize, shift: f64) -> Vec<f64> {
        (0..n).map(|_| shift + rng.gen_range(3.0..3.5)).collect()
    }

    #[test]
    fn the_sorted_classifier_agrees_with_trying_every_threshold() {
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let (a_len, b_len, shift) = (
                rng.gen_range(1..40),
                rng.gen_range(1..40),
                rng.gen_range(0..4),
            );
            let a = on_a_grid(&mut rng, a_len, shift);
            let b = on_a_grid(&mut rng, b_len, 0);
            let (fast, slow) = (best_threshold_accuracy(&a, &b), by_every_threshold(&a, &b));
            assert!(
                (fast - slow).abs() < 1e-12,
                "{a:?} {b:?}: {fast} against {slow}"
            );
        }
    }

    #[test]
    fn chance_is_above_a_coin_toss_and_below_a_real_difference() {
        let mut rng = rand::thread_rng();
        let (known, unknown) = (spread(&mut rng, 300, 0.0), spread(&mut rng, 300, 0.0));
        let chance = chance_accuracy(&known, &unknown);
        // 300 against 300: the best threshold's 95th percentile by chance
        // is near 55.6 % (the two-sample Kolmogorov–Smirnov bound at 5 %:
        // 50 % + 1.36 / √150 / 2).
        assert!(chance > 0.52 && chance < 0.59, "{chance}");
        // Half the spread later: the best threshold is right 75 % of the
        // time (50 % + 0.25 / 0.5 / 2), far past anything chance gives.
        let leaking = spread(&mut rng, 300, 0.25);
        assert!(best_threshold_accuracy(&leaking, &unknown) > 0.68);
        assert!(chance_accuracy(&leaking, &unknown) < 0.59);
    }
}
