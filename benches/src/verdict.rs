//! A benchmark's conclusion: claims of the form "ratio ≥ goal", judged on the median of the
//! per-round ratios, and whether the rounds agree (all on one side of the goal).
use std::fmt;

use crate::stats::Spread;

pub struct Claim {
    pub what: String,
    pub goal: f64,
    pub spread: Spread,
}

impl Claim {
    #[must_use]
    pub fn met(&self) -> bool {
        self.spread.median >= self.goal
    }

    /// Every round on the same side of the goal: the verdict cannot flip with the round.
    #[must_use]
    pub fn unanimous(&self) -> bool {
        self.spread.min >= self.goal || self.spread.max < self.goal
    }
}

pub struct Verdict {
    pub title: String,
    pub claims: Vec<Claim>,
}

impl Verdict {
    #[must_use]
    pub fn met(&self) -> bool {
        self.claims.iter().all(Claim::met)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\n### Verdict\n\nClaim: {}. Each line is judged on the median of its per-round ratios \
             (three decimals here, so that a median just below the goal does not read as the \
             goal); \"unanimous\" when every round falls on the same side of the goal.\n\n\
             | ratio | goal | median (min–max) | met | rounds |\n|---|---:|---:|:---:|---|",
            self.title
        )?;
        for c in &self.claims {
            writeln!(
                f,
                "| {} | ≥ {:.2} | {:.3} ({:.3}–{:.3}) | {} | {} |",
                c.what,
                c.goal,
                c.spread.median,
                c.spread.min,
                c.spread.max,
                if c.met() { "yes" } else { "no" },
                if c.unanimous() { "unanimous" } else { "split" }
            )?;
        }
        let failed = self.claims.iter().filter(|c| !c.met()).count();
        writeln!(
            f,
            "\n**Verdict: {}** ({} of {} ratios below their goal).",
            if self.met() { "met" } else { "not met" },
            failed,
            self.claims.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(min: f64, median: f64, max: f64) -> Claim {
        Claim {
            what: "x".into(),
            goal: 1.0,
            spread: Spread { min, median, max },
        }
    }

    #[test]
    fn judged_on_the_median_unanimous_only_when_all_rounds_agree() {
        assert!(claim(1.0, 1.1, 1.2).met() && claim(1.0, 1.1, 1.2).unanimous());
        assert!(claim(0.9, 1.0, 1.2).met() && !claim(0.9, 1.0, 1.2).unanimous());
        assert!(!claim(0.8, 0.9, 0.95).met() && claim(0.8, 0.9, 0.95).unanimous());
        let v = Verdict {
            title: "t".into(),
            claims: vec![claim(1.0, 1.1, 1.2), claim(0.8, 0.9, 0.95)],
        };
        assert!(!v.met());
        assert!(v.to_string().contains("**Verdict: not met** (1 of 2"));
    }
}
