//! Test statistics with thresholds set by theory, for the verdict's calibrated rules: the
//! normal quantile (for Bonferroni-corrected z cuts), a one-sided lower confidence bound on a
//! proportion (Wilson), and the upper tail of a binomial distribution.

/// The z with `P(Z > z) = p` for a standard normal Z (Acklam's rational approximation, relative
/// error under 1.2e-9 over (0, 1)). `p` is clamped to `[1e-300, 1 - 1e-16]`.
pub fn normal_isf(p: f64) -> f64 {
    -normal_quantile(p.clamp(1e-300, 1.0 - 1e-16))
}

/// The standard normal quantile function (`P(Z <= z) = p`).
fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const LOW: f64 = 0.02425;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The Wilson score lower bound on a proportion from `m` successes in `n` trials, one-sided at
/// `z` (0 when `n` is 0).
pub fn wilson_lower(m: usize, n: usize, z: f64) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let (m, n) = (m as f64, n as f64);
    let p = m / n;
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half) / (1.0 + z2 / n)).max(0.0)
}

/// `P(X >= m)` for `X ~ Binomial(n, p)`, summed exactly in log space from `m` upwards.
pub fn binomial_sf(m: usize, n: usize, p: f64) -> f64 {
    if m == 0 {
        return 1.0;
    }
    if m > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // log C(n, m) as a running sum, so that no factorial is formed.
    let log_choose: f64 = (1..=m).map(|i| ((n - m + i) as f64 / i as f64).ln()).sum();
    let mut log_term = log_choose + m as f64 * lp + (n - m) as f64 * lq;
    let mut total = 0.0;
    for j in m..=n {
        let term = log_term.exp();
        total += term;
        if j > m && term < total * 1e-17 {
            break;
        }
        // pmf(j + 1) / pmf(j) = (n - j) / (j + 1) * p / q
        log_term += ((n - j) as f64 / (j + 1) as f64).ln() + lp - lq;
    }
    total.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_tables() {
        // Standard tables: z for upper tails 0.05, 0.01, 0.001, 1e-6 (to 4 decimals).
        for (p, z) in [
            (0.5, 0.0),
            (0.05, 1.6449),
            (0.01, 2.3263),
            (0.001, 3.0902),
            (1e-6, 4.7534),
            (0.975, -1.9600),
        ] {
            assert!((normal_isf(p) - z).abs() < 1e-4, "p={p}: {}", normal_isf(p));
        }
    }

    #[test]
    fn wilson_bound_is_below_the_rate_and_tightens_with_n() {
        let z = normal_isf(0.01);
        let small = wilson_lower(5, 100, z);
        let large = wilson_lower(500, 10_000, z);
        assert!(
            small < 0.05 && large < 0.05 && large > small,
            "{small} {large}"
        );
        // 5 % of 10,000 at z 2.33: about 0.05 - 2.33 * 0.00218.
        assert!((large - 0.0450).abs() < 5e-4, "{large}");
        assert_eq!(wilson_lower(0, 100, z), 0.0);
        assert_eq!(wilson_lower(0, 0, z), 0.0);
    }

    #[test]
    fn binomial_tail_matches_direct_sums() {
        // P(X >= 3), X ~ B(4, 0.5) = 5/16; P(X >= 10), X ~ B(10, 0.5) = 1/1024.
        assert!((binomial_sf(3, 4, 0.5) - 5.0 / 16.0).abs() < 1e-12);
        assert!((binomial_sf(10, 10, 0.5) - 1.0 / 1024.0).abs() < 1e-12);
        assert_eq!(binomial_sf(0, 10, 0.3), 1.0);
        assert_eq!(binomial_sf(11, 10, 0.3), 0.0);
        // A large n stays finite and sensible: 600 of 10,000 at p 0.05 is about 4.6 sd up.
        let p = binomial_sf(600, 10_000, 0.05);
        assert!(p > 1e-7 && p < 1e-4, "{p}");
    }
}
