//! Small measurement helpers: recall, latency percentiles, peak RSS.

use std::collections::HashSet;

use crate::dataset::Matrix;

/// Mean recall@k: for each query, `|result ∩ gt[..k]| / k`, averaged.
///
/// `results[q]` holds the ids returned for query `q` (only the first `k`
/// are counted, in case an engine returns more). Negative ground-truth ids
/// (padding in some public files) never match.
///
/// # Panics
/// If `gt` has fewer rows than `results` or fewer than `k` columns; callers
/// validate both when loading the ground truth.
pub fn mean_recall(results: &[Vec<u64>], gt: &Matrix<i32>, k: usize) -> f64 {
    assert!(gt.rows() >= results.len() && gt.dim() >= k && k > 0);
    if results.is_empty() {
        return 0.0;
    }
    let total: usize = results
        .iter()
        .enumerate()
        .map(|(q, ids)| {
            let truth: HashSet<u64> = gt.row(q)[..k]
                .iter()
                .filter_map(|&id| u64::try_from(id).ok())
                .collect();
            // Dedup the result ids so an engine that returns an id twice
            // cannot score it twice.
            let found: HashSet<u64> = ids.iter().take(k).copied().collect();
            found.intersection(&truth).count()
        })
        .sum();
    total as f64 / (results.len() * k) as f64
}

/// Nearest-rank percentile of an ascending-sorted slice; `p` in `[0, 100]`.
/// Returns 0 for an empty slice.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank: the smallest value with at least p% of samples <= it.
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Peak resident set size of this process in bytes (`VmHWM`), or `None` where
/// `/proc/self/status` is unavailable (non-Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm(&status)
}

/// Current resident set size of this process in bytes (`VmRSS`).
pub fn current_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kb(&status, "VmRSS:")
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    parse_status_kb(status, "VmHWM:")
}

fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => Some(value * 1024),
        _ => None,
    }
}

/// Formats a byte count with a binary unit, e.g. `12.3 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_intersection() {
        let gt = Matrix::new(3, vec![1, 2, 3, 7, 8, -1]);
        let results = vec![vec![3, 1, 9], vec![7, 8, 8]];
        // q0: {1,3} of 3; q1: {7,8} of 3 (duplicate 8 counted once).
        assert!((mean_recall(&results, &gt, 3) - 4.0 / 6.0).abs() < 1e-12);
        // k=1 only looks at the first gt column and the first result.
        assert!((mean_recall(&results, &gt, 1) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[5.0], 99.0), 5.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tkyro\nVmPeak:\t  999 kB\nVmHWM:\t    2048 kB\nVmRSS:\t 1 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(2048 * 1024));
        assert_eq!(parse_vm_hwm("Name: x\n"), None);
        if cfg!(target_os = "linux") {
            assert!(peak_rss_bytes().unwrap() > 0);
        }
    }

    #[test]
    fn human_bytes_picks_unit() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
