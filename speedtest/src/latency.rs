//! Latency histograms that processes can merge: operation times bucketed on
//! a log scale (8 buckets per doubling, so a quantile is exact to within
//! about 9%), plus the exact maximum and count. Small enough to send as one
//! JSON line from a worker process ([`Histogram::to_json`]).
//!
//! Invariants: `n` is the sum of `counts`; bucket `i` holds times `t` (in
//! microseconds, at least 1) with `floor(8·log2 t) == i`.

use std::time::Duration;

use serde_json::{json, Value};

const PER_DOUBLING: f64 = 8.0;
/// 2^40 µs is 12 days: nothing we time lasts longer.
const BUCKETS: usize = 40 * 8;

#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    counts: Vec<u64>,
    pub n: u64,
    /// Longest time seen, in seconds.
    pub max: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], n: 0, max: 0.0 }
    }
}

fn bucket(us: f64) -> usize {
    ((us.max(1.0).log2() * PER_DOUBLING) as usize).min(BUCKETS - 1)
}

impl Histogram {
    pub fn record(&mut self, d: Duration) {
        let s = d.as_secs_f64();
        self.counts[bucket(s * 1e6)] += 1;
        self.n += 1;
        self.max = self.max.max(s);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.n += other.n;
        self.max = self.max.max(other.max);
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) in seconds: the geometric middle of its
    /// bucket, capped by the maximum (the maximum itself for the top rank).
    /// `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        if rank == self.n {
            return Some(self.max); // the top rank is the maximum, known exactly
        }
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let mid_us = 2f64.powf((i as f64 + 0.5) / PER_DOUBLING);
                return Some((mid_us / 1e6).min(self.max));
            }
        }
        Some(self.max)
    }

    /// Sparse: `{"n", "max", "buckets": [[index, count], …]}`.
    pub fn to_json(&self) -> Value {
        let b: Vec<Value> =
            self.counts.iter().enumerate().filter(|(_, c)| **c > 0).map(|(i, c)| json!([i, c])).collect();
        json!({ "n": self.n, "max": self.max, "buckets": b })
    }

    pub fn from_json(v: &Value) -> Result<Histogram, String> {
        let mut h = Histogram { max: v["max"].as_f64().ok_or("histogram without max")?, ..Default::default() };
        for pair in v["buckets"].as_array().ok_or("histogram without buckets")? {
            let (i, c) = (pair[0].as_u64().ok_or("bad bucket")?, pair[1].as_u64().ok_or("bad count")?);
            *h.counts.get_mut(i as usize).ok_or("bucket out of range")? += c;
            h.n += c;
        }
        if h.n != v["n"].as_u64().ok_or("histogram without n")? {
            return Err("histogram: n is not the sum of its buckets".into());
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_a_bucket() {
        let mut h = Histogram::default();
        for us in 1..=1000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).unwrap() * 1e6;
        assert!((460.0..=545.0).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), Some(0.001));
        assert!(Histogram::default().quantile(0.5).is_none());
    }

    #[test]
    fn json_round_trips_and_merges() {
        let mut a = Histogram::default();
        a.record(Duration::from_millis(3));
        let mut b = Histogram::from_json(&a.to_json()).unwrap();
        assert_eq!(a, b);
        b.merge(&a);
        assert_eq!(b.n, 2);
        assert_eq!(b.max, 0.003);
    }
}
