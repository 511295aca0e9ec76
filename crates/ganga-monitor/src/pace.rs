//! How often a backend is asked: its interval, stretched while nothing changes and backed
//! off (with jitter) while it fails. Pure: given what the last poll found, the next wait.

use std::time::Duration;

/// The pacing rules, from the settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PaceRules {
    /// The interval while things change: the backend's own, or the user's.
    pub base: Duration,
    /// While nothing changes the interval grows by half each poll, up to `base` times
    /// this.
    pub quiet_factor: u32,
    /// The longest wait after errors.
    pub error_cap: Duration,
}

/// Where a backend's pacing stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    rules: PaceRules,
    current: Duration,
    errors: u32,
}

impl Pace {
    pub fn new(rules: PaceRules) -> Pace {
        Pace {
            rules,
            current: rules.base,
            errors: 0,
        }
    }

    /// How long to wait before the next poll, after a poll that changed something.
    pub fn changed(&mut self) -> Duration {
        self.errors = 0;
        self.current = self.rules.base;
        self.current
    }

    /// After a poll that changed nothing: a little longer each time, up to the cap.
    pub fn quiet(&mut self) -> Duration {
        self.errors = 0;
        let cap = self
            .rules
            .base
            .saturating_mul(self.rules.quiet_factor.max(1));
        self.current = (self.current.saturating_mul(3) / 2).clamp(self.rules.base, cap);
        self.current
    }

    /// After a failed poll: twice as long for each failure in a row, up to the cap,
    /// spread by ±20% (`jitter` in `[0, 1)`) so that many monitors do not retry in step.
    pub fn failed(&mut self, jitter: f64) -> Duration {
        self.errors = self.errors.saturating_add(1);
        let doubled = self
            .rules
            .base
            .saturating_mul(1u32 << self.errors.min(16))
            .min(self.rules.error_cap);
        let spread = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        doubled.mul_f64(spread).min(self.rules.error_cap)
    }

    /// Failures in a row.
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// The interval in use while the backend answers.
    pub fn interval(&self) -> Duration {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> PaceRules {
        PaceRules {
            base: Duration::from_secs(2),
            quiet_factor: 4,
            error_cap: Duration::from_secs(60),
        }
    }

    #[test]
    fn quiet_polls_stretch_up_to_the_cap_and_a_change_resets() {
        let mut p = Pace::new(rules());
        let waits: Vec<u64> = (0..6).map(|_| p.quiet().as_millis() as u64).collect();
        assert_eq!(waits, [3000, 4500, 6750, 8000, 8000, 8000]);
        assert_eq!(p.changed(), Duration::from_secs(2));
    }

    #[test]
    fn failures_back_off_with_jitter_up_to_the_cap() {
        let mut p = Pace::new(rules());
        assert_eq!(p.failed(0.5), Duration::from_secs(4));
        assert_eq!(p.failed(0.5), Duration::from_secs(8));
        assert_eq!(p.failed(0.0), Duration::from_secs(16).mul_f64(0.8));
        for _ in 0..20 {
            assert!(p.failed(0.99) <= Duration::from_secs(60));
        }
        assert_eq!(p.errors(), 23);
        p.quiet();
        assert_eq!(p.errors(), 0);
    }
}
