//! The only source of randomness: splitmix64, seeded from the run's one `u64`. Owns nothing
//! else. Two ways to draw: a stream ([`Rng`]) for generating schedules, and [`mix`] for
//! stateless draws keyed by what they are about (which probe, which command), so that removing
//! a fault while shrinking does not shift every later draw.

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast and good enough for test schedules.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        finish(self.0)
    }

    /// Uniform in `0..n` (`n` > 0; 0 gives 0). The modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo))
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }
}

fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stateless draw: a well-mixed function of a seed and a key.
pub fn mix(seed: u64, key: u64) -> u64 {
    finish(seed ^ finish(key.wrapping_add(0x9E37_79B9_7F4A_7C15)))
}

/// [`mix`] of several keys, mapped into `lo..hi`.
pub fn draw(seed: u64, keys: &[u64], lo: u64, hi: u64) -> u64 {
    let h = keys.iter().fold(seed, |acc, k| mix(acc, *k));
    lo + h % hi.saturating_sub(lo).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = (0..5).scan(Rng::new(7), |r, _| Some(r.next_u64())).collect();
        let b: Vec<u64> = (0..5).scan(Rng::new(7), |r, _| Some(r.next_u64())).collect();
        assert_eq!(a, b);
        assert_ne!(a[0], Rng::new(8).next_u64());
        // the reference value of splitmix64 seeded with 0
        assert_eq!(Rng::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut r = Rng::new(1);
        for _ in 0..1000 {
            let v = r.range(10, 20);
            assert!((10..20).contains(&v));
            assert!(draw(3, &[1, 2], 5, 6) == 5);
        }
        assert_eq!(r.range(4, 4), 4);
    }
}
