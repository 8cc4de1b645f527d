//! Tcl 8.x's `srand()` / `rand()`, bit for bit, so that the SQL we generate is
//! exactly the SQL `tool/speedtest.tcl` wrote.
//!
//! Tcl (generic/tclBasic.c, `ExprRandFunc`/`ExprSrandFunc`) uses the
//! Park–Miller "minimal standard" generator with Schrage's factorisation:
//!
//! * state: `seed`, kept in `1 ..= 2^31 - 2`;
//! * step: `seed = 16807 * seed mod (2^31 - 1)` (computed as
//!   `IA*(seed % IQ) - IR*(seed / IQ)`, plus `IM` if negative);
//! * value: `seed * (1.0 / (2^31 - 1))` — a multiplication by the reciprocal,
//!   not a division, which matters for the last bit and so for `int()`;
//! * `srand(n)` stores `n` (masked to 31 bits; 0 and `2^31 - 1` are xor-ed
//!   with 123459876), then *calls rand() once* and returns that value, so the
//!   script's first `rand()` after `expr srand(1)` is the second draw.
//!
//! `int(rand()*N)` in Tcl truncates toward zero; [`TclRng::rand_int`] does the same.

const IA: i64 = 16807;
const IM: i64 = 2_147_483_647;
const IQ: i64 = 127_773;
const IR: i64 = 2836;
const MASK: i64 = 123_459_876;

/// One Tcl interpreter's random stream.
#[derive(Clone, Debug)]
pub struct TclRng {
    seed: i64,
}

impl TclRng {
    /// `expr {srand(n)}`: seeds the stream and consumes the first value, as
    /// Tcl does. Returns the stream and the value `srand` itself returned.
    pub fn srand(n: i64) -> (TclRng, f64) {
        // Tcl keeps only the low 32 bits of an out-of-range seed, then masks to 31.
        let mut rng = TclRng { seed: n & 0xFFFF_FFFF };
        let first = rng.rand();
        (rng, first)
    }

    /// `expr {rand()}`: the next value in `(0, 1)`.
    pub fn rand(&mut self) -> f64 {
        let mut s = self.seed & 0x7FFF_FFFF;
        if s == 0 || s == 0x7FFF_FFFF {
            s ^= MASK;
        }
        let tmp = s / IQ;
        s = IA * (s - tmp * IQ) - IR * tmp;
        if s < 0 {
            s += IM;
        }
        self.seed = s;
        s as f64 * (1.0 / IM as f64)
    }

    /// `expr {int(rand()*n)}`.
    pub fn rand_int(&mut self, n: u64) -> u64 {
        // Truncation toward zero; the product is in [0, n).
        (self.rand() * n as f64) as u64
    }

    /// The current internal seed (for tests).
    pub fn seed(&self) -> i64 {
        self.seed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srand_1_consumes_the_first_value() {
        let (rng, first) = TclRng::srand(1);
        assert_eq!(rng.seed(), 16807);
        assert_eq!(first, 16807.0 * (1.0 / 2_147_483_647.0));
    }

    #[test]
    fn the_first_draws_after_srand_1_are_the_seeds_first_t1_values() {
        let (mut rng, _) = TclRng::srand(1);
        assert_eq!(rng.rand_int(100_000), 13153);
        assert_eq!(rng.rand_int(100_000), 75560);
    }

    #[test]
    fn the_stream_is_park_miller() {
        // seed_{k+1} = 16807 * seed_k mod (2^31 - 1), checked with plain u128 arithmetic.
        let (mut rng, _) = TclRng::srand(1);
        let mut s: u128 = 16807;
        for _ in 0..100_000 {
            s = s * 16807 % 2_147_483_647;
            rng.rand();
            assert_eq!(rng.seed() as u128, s);
        }
    }

    #[test]
    fn zero_seed_is_remapped_like_tcl() {
        let (rng, _) = TclRng::srand(0);
        let mut expect = TclRng { seed: MASK };
        expect.rand();
        assert_eq!(rng.seed(), expect.seed());
    }
}
