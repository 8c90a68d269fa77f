//! Summaries of repeated measurements: the median and the spread of per-round figures.

/// Minimum, median and maximum of a set of figures (per-round ratios, say).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `values`; NaN figures when there are none.
    #[must_use]
    pub fn of(values: &[f64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Spread {
                min: f64::NAN,
                median: f64::NAN,
                max: f64::NAN,
            };
        }
        Spread {
            min: v[0],
            median: median_of_sorted(&v),
            max: v[v.len() - 1],
        }
    }

    /// `1.02 (0.98–1.05)`: the median, then the range, for a table cell.
    #[must_use]
    pub fn cell(&self) -> String {
        format!("{:.2} ({:.2}–{:.2})", self.median, self.min, self.max)
    }
}

fn median_of_sorted(v: &[f64]) -> f64 {
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// Per-round ratios `numerator[r] / denominator[r]`: each round compared with the baseline
/// measured in that same round, so slow drifts of the machine cancel.
#[must_use]
pub fn ratios(numerator: &[f64], denominator: &[f64]) -> Vec<f64> {
    numerator
        .iter()
        .zip(denominator)
        .map(|(n, d)| n / d)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_of_odd_and_even_counts() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 5.0, 4.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
        assert!((Spread::of(&[4.0, 1.0, 2.0, 3.0]).median - 2.5).abs() < 1e-12);
        assert!(Spread::of(&[]).median.is_nan());
        assert_eq!(Spread::of(&[1.0, 2.0, 3.0]).cell(), "2.00 (1.00–3.00)");
    }

    #[test]
    fn ratios_are_per_round() {
        assert_eq!(ratios(&[2.0, 3.0], &[1.0, 6.0]), vec![2.0, 0.5]);
    }
}
