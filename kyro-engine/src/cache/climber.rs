//! Hill climbing on the hit ratio: the controller that decides how much of
//! the cache the admission window gets, and notices when the workload
//! changes.
//!
//! A recency-biased workload (keys requested in bursts, then never again)
//! wants a large window, where new keys earn their hits before they face the
//! frequency filter; a frequency-biased one (a stable popular set) wants a
//! small window and a large main space guarded by the filter. The climber
//! does not know which it faces, so it experiments: after each sample of
//! requests it compares the hit ratio with the previous sample's, keeps
//! moving the window size the same way while the ratio improves, and turns
//! round when it gets worse. Steps shrink geometrically so the size settles,
//! and jump back to full size when the hit ratio moves by 5 points or more
//! (the workload changed, so the old optimum is stale).
//!
//! Two refinements over Caffeine's climber, both against noise:
//!
//! - A change smaller than two standard errors of the difference of two
//!   samples is treated as no information: the climber goes on in the same
//!   direction with a halved step instead of turning round on a coin flip.
//!   On a stable workload it settles within a few samples instead of
//!   wandering.
//! - While the cache is (re)learning a workload, the hit ratio rises whatever
//!   the window does. The climber holds still until the rise stops, so that
//!   learning is not credited to a window move — at the start, and after a
//!   *collapse*: a drop of 5 points or more, checked on short probes so that
//!   it is seen within `max(entries, 4096)` requests. A collapse is
//!   reported to the cache, which forgets its learned frequencies.

/// First and restarted step, as a fraction of the capacity.
const STEP_FRACTION: f64 = 0.0625;
/// Each step is this fraction of the one before.
const STEP_DECAY: f64 = 0.98;
/// A hit-ratio change within this many standard errors is noise.
const NOISE_Z: f64 = 2.0;
/// Step decay after a sample whose hit ratio fell by less than the noise:
/// the climber settles fast where moves make no measurable difference.
const INCONCLUSIVE_DECAY: f64 = 0.5;
/// A change of the hit ratio this large between samples means the workload
/// changed: a drop is a collapse, and either way the step restarts.
const COLLAPSE_THRESHOLD: f64 = 0.05;

/// The climber's decision at the end of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Adjustment {
    /// Bytes to add to the window (negative: take from it).
    pub(super) window_change: i64,
    /// The hit ratio fell sharply since the previous sample: the workload
    /// changed, and what was learned about it is stale.
    pub(super) collapsed: bool,
}

/// Samples hits and misses and proposes window-size changes in bytes.
#[derive(Debug, Clone)]
pub(super) struct HillClimber {
    hits: u64,
    misses: u64,
    /// Hits and misses of the current probe, a short slice of the sample
    /// that is checked for a collapse without waiting for the sample's end.
    probe_hits: u64,
    probe_misses: u64,
    /// Hit ratio of the previous sample; `None` until there is one.
    previous_hit_ratio: Option<f64>,
    /// Signed size of the next move, in bytes: positive grows the window.
    step: f64,
    /// Magnitude of a full (restarted) step.
    full_step: f64,
    /// Whether the cache is still learning the workload (at start, or after
    /// it changed): the climber holds the window until the hit ratio stops
    /// rising by itself.
    settling: bool,
}

impl HillClimber {
    /// A climber for a cache of `capacity` bytes. Its first move shrinks
    /// the window: the cache starts with a small one, which suits most
    /// workloads, and the climber grows it if that makes things worse.
    pub(super) fn new(capacity: u64) -> Self {
        let full_step = capacity as f64 * STEP_FRACTION;
        Self {
            hits: 0,
            misses: 0,
            probe_hits: 0,
            probe_misses: 0,
            previous_hit_ratio: None,
            step: -full_step,
            full_step,
            settling: true,
        }
    }

    /// Counts one request. Returns a decision when `sample_size` requests
    /// have been counted, or earlier when the last `probe_size` requests hit
    /// so much less than the previous sample that the workload must have
    /// changed; either way a new sample starts.
    pub(super) fn record(
        &mut self,
        hit: bool,
        sample_size: u64,
        probe_size: u64,
    ) -> Option<Adjustment> {
        if hit {
            self.hits += 1;
            self.probe_hits += 1;
        } else {
            self.misses += 1;
            self.probe_misses += 1;
        }
        let probe_requests = self.probe_hits + self.probe_misses;
        if probe_requests >= probe_size {
            let probe_ratio = self.probe_hits as f64 / probe_requests as f64;
            self.probe_hits = 0;
            self.probe_misses = 0;
            if let Some(previous) = self.previous_hit_ratio {
                if probe_ratio <= previous - COLLAPSE_THRESHOLD {
                    return Some(self.decide(probe_ratio, probe_requests));
                }
            }
        }
        let requests = self.hits + self.misses;
        if requests >= sample_size {
            let hit_ratio = self.hits as f64 / requests as f64;
            return Some(self.decide(hit_ratio, requests));
        }
        None
    }

    /// The move for a sample (or probe) of `requests` requests that hit
    /// `hit_ratio`.
    fn decide(&mut self, hit_ratio: f64, requests: u64) -> Adjustment {
        let change = hit_ratio - self.previous_hit_ratio.unwrap_or(0.0);
        self.previous_hit_ratio = Some(hit_ratio);
        self.reset_sample();
        // The standard error of the difference of two samples' hit ratios:
        // a change within `NOISE_Z` of them says nothing about the last move.
        let noise = NOISE_Z * (2.0 * hit_ratio * (1.0 - hit_ratio) / requests.max(1) as f64).sqrt();
        if change <= -COLLAPSE_THRESHOLD {
            // The workload changed. Hold the window while the cache relearns:
            // the hit ratio will climb whatever the window does, and moves
            // made now would be credited for it. But a collapse while still
            // relearning from the last one means relearning does not help:
            // keys are requested again only while they are recent, which is
            // what the window is for, so it grows.
            let window_change = if self.settling {
                self.step = self.full_step;
                self.full_step as i64
            } else {
                self.step = self.step.signum() * self.full_step;
                0
            };
            self.settling = true;
            return Adjustment {
                window_change,
                collapsed: true,
            };
        }
        if change >= COLLAPSE_THRESHOLD {
            // A jump this large is the workload changing too (for the
            // better): the old optimum is stale, explore with full steps.
            self.step = self.step.signum() * self.full_step;
        }
        if self.settling {
            if change > noise {
                return Adjustment {
                    window_change: 0,
                    collapsed: false,
                };
            }
            self.settling = false;
        }
        // Keep going while it helps, turn round when it clearly hurts. A
        // change lost in the noise keeps the direction; if it was a loss,
        // the step halves, so that on a workload where the window size makes
        // no measurable difference the climber stops within a few samples.
        let (adjustment, decay) = if change > noise {
            (self.step, STEP_DECAY)
        } else if change < -noise {
            (-self.step, STEP_DECAY)
        } else if change >= 0.0 {
            (self.step, STEP_DECAY)
        } else {
            (self.step, INCONCLUSIVE_DECAY)
        };
        self.step = adjustment * decay;
        Adjustment {
            window_change: adjustment as i64,
            collapsed: false,
        }
    }

    /// Whether a probe has just ended (or a sample, which ends the probe
    /// too): no request is counted in the current probe yet.
    pub(super) fn probe_is_empty(&self) -> bool {
        self.probe_hits + self.probe_misses == 0
    }

    /// Forgets the current sample (after `clear`, say), keeping the step.
    pub(super) fn reset_sample(&mut self) {
        self.hits = 0;
        self.misses = 0;
        self.probe_hits = 0;
        self.probe_misses = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests per sample in these tests: two standard errors of the
    /// difference of two samples' hit ratios are then 1.4 points.
    const SAMPLE: u64 = 10_000;

    /// Feeds one sample whose hit ratio is `ratio`; returns the decision.
    fn sample(climber: &mut HillClimber, ratio: f64) -> Option<Adjustment> {
        let hits = (ratio * SAMPLE as f64).round() as u64;
        let mut decision = None;
        for i in 0..SAMPLE {
            decision = climber.record(i < hits, SAMPLE, SAMPLE);
        }
        decision
    }

    fn moved(climber: &mut HillClimber, ratio: f64) -> i64 {
        sample(climber, ratio).map_or(i64::MIN, |d| d.window_change)
    }

    /// A climber for 1,600 bytes (full step 100) past its initial settling.
    fn settled() -> HillClimber {
        let mut climber = HillClimber::new(1_600);
        assert_eq!(moved(&mut climber, 0.5), 0);
        assert_eq!(moved(&mut climber, 0.5), -100, "first move shrinks");
        climber
    }

    #[test]
    fn decides_only_at_the_end_of_a_sample() {
        let mut climber = HillClimber::new(1_600);
        for _ in 0..99 {
            assert_eq!(climber.record(true, 100, 100), None);
        }
        assert!(climber.record(true, 100, 100).is_some());
    }

    #[test]
    fn holds_the_window_while_the_hit_ratio_rises_by_itself() {
        let mut climber = HillClimber::new(1_600);
        // A cache learning its workload: every sample better than the last.
        for ratio in [0.2, 0.3, 0.4, 0.5] {
            assert_eq!(moved(&mut climber, ratio), 0, "at {ratio}");
        }
        // Learning is over; climbing starts with a full step.
        assert_eq!(moved(&mut climber, 0.5), -100);
    }

    #[test]
    fn keeps_direction_while_improving_and_turns_round_when_clearly_worse() {
        let mut climber = settled();
        assert_eq!(
            moved(&mut climber, 0.53),
            -98,
            "better: same way, 2 % smaller"
        );
        assert_eq!(moved(&mut climber, 0.56), -96);
        let turned = moved(&mut climber, 0.53);
        assert!((90..=95).contains(&turned), "worse: turned round, {turned}");
    }

    #[test]
    fn noise_neither_turns_it_round_nor_keeps_it_wandering() {
        let mut climber = settled();
        let mut moves = Vec::new();
        for i in 0..12 {
            // ±0.4 points: far inside the noise of 10,000 requests.
            let ratio = if i % 2 == 0 { 0.496 } else { 0.5 };
            moves.push(moved(&mut climber, ratio));
        }
        assert!(
            moves.iter().all(|&m| m <= 0),
            "never turned round: {moves:?}"
        );
        assert!(moves[11] > -5, "steps died out: {moves:?}");
    }

    #[test]
    fn a_collapse_is_reported_and_the_window_held_while_relearning() {
        let mut climber = settled();
        for _ in 0..6 {
            moved(&mut climber, 0.5);
        }
        let collapse = sample(&mut climber, 0.3).unwrap();
        assert!(collapse.collapsed);
        assert_eq!(collapse.window_change, 0);
        assert_eq!(moved(&mut climber, 0.4), 0, "relearning");
        assert_eq!(moved(&mut climber, 0.45), 0, "relearning");
        // Relearnt: climbing resumes with a full step, the same way as
        // before the collapse.
        assert_eq!(moved(&mut climber, 0.45), -100);
    }

    #[test]
    fn a_collapse_while_relearning_grows_the_window() {
        let mut climber = settled();
        assert!(sample(&mut climber, 0.3).unwrap().collapsed);
        assert_eq!(moved(&mut climber, 0.4), 0);
        let again = sample(&mut climber, 0.3).unwrap();
        assert!(again.collapsed);
        assert_eq!(again.window_change, 100);
    }

    #[test]
    fn a_probe_catches_a_collapse_before_the_sample_ends() {
        let mut climber = HillClimber::new(1_600);
        for _ in 0..2 {
            for i in 0..SAMPLE {
                climber.record(i % 2 == 0, SAMPLE, 1_000);
            }
        }
        // Nothing but misses: the first 1,000-request probe reports it.
        let decisions: Vec<_> = (0..1_000)
            .filter_map(|_| climber.record(false, SAMPLE, 1_000))
            .collect();
        assert_eq!(decisions.len(), 1);
        assert!(decisions[0].collapsed);
    }
}
