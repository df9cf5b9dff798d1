//! Exact k-nearest-neighbour ground truth by brute force.
//!
//! Distances come from `kyro_engine::distance::distance`, the same function
//! the engine ranks by, so "exact" means exact *for the engine's metric
//! definition* (cosine = 1 - cos, dot = -a·b, l2 = squared euclidean) rather
//! than for some other library's numerics.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use kyro_engine::Metric;
use rayon::prelude::*;

use crate::dataset::Matrix;

/// Errors from [`exact_knn`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroundTruthError {
    /// Base and query vectors have different dimensions.
    #[error("base vectors have dimension {base} but queries have dimension {query}")]
    DimMismatch {
        /// Base dimension.
        base: usize,
        /// Query dimension.
        query: usize,
    },
    /// `k` is zero or larger than the base set.
    #[error("k = {k} is invalid for a base set of {n} vectors (need 1 <= k <= n)")]
    BadK {
        /// Requested neighbours.
        k: usize,
        /// Base set size.
        n: usize,
    },
    /// Row numbers are stored as `i32` in `.ivecs`.
    #[error(
        "base set has {n} rows; .ivecs ids are i32, so at most {} rows are supported",
        i32::MAX
    )]
    TooManyRows {
        /// Base set size.
        n: usize,
    },
}

/// A candidate neighbour ordered by (distance, row), so the max-heap's top
/// is the current worst and equal distances break ties by lower row number,
/// which keeps the output deterministic.
#[derive(Clone, Copy)]
struct Candidate {
    distance: f32,
    row: u32,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.row.cmp(&other.row))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

/// Returns the `k` nearest base rows of each query, closest first, as a
/// `queries.rows() x k` matrix of row numbers.
///
/// Work is split across queries on the *current* rayon pool, so callers
/// choose the thread count with `ThreadPool::install`. `on_query_done` is
/// called once per finished query (from worker threads) to drive progress.
pub fn exact_knn(
    metric: Metric,
    base: &Matrix<f32>,
    queries: &Matrix<f32>,
    k: usize,
    on_query_done: &(dyn Fn() + Sync),
) -> Result<Matrix<i32>, GroundTruthError> {
    if base.dim() != queries.dim() {
        return Err(GroundTruthError::DimMismatch {
            base: base.dim(),
            query: queries.dim(),
        });
    }
    let n = base.rows();
    if k == 0 || k > n {
        return Err(GroundTruthError::BadK { k, n });
    }
    if i32::try_from(n).is_err() {
        return Err(GroundTruthError::TooManyRows { n });
    }

    let mut ids = vec![0i32; queries.rows() * k];
    ids.par_chunks_mut(k)
        .zip(queries.as_slice().par_chunks(queries.dim()))
        .for_each(|(out, query)| {
            let mut heap = BinaryHeap::with_capacity(k + 1);
            for (row, vector) in base.iter_rows().enumerate() {
                let candidate = Candidate {
                    distance: kyro_engine::distance::distance(metric, query, vector),
                    // n <= i32::MAX was checked above.
                    row: row as u32,
                };
                if heap.len() < k {
                    heap.push(candidate);
                } else if let Some(mut worst) = heap.peek_mut() {
                    if candidate < *worst {
                        *worst = candidate;
                    }
                }
            }
            for (slot, candidate) in out.iter_mut().zip(heap.into_sorted_vec()) {
                *slot = candidate.row as i32;
            }
            on_query_done();
        });
    Ok(Matrix::new(k, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Matrix<f32> {
        // Hand-placed 2-d points.
        Matrix::new(
            2,
            vec![
                0.0, 0.0, // 0
                1.0, 0.0, // 1
                0.0, 2.0, // 2
                -3.0, 0.0, // 3
                5.0, 5.0, // 4
            ],
        )
    }

    #[test]
    fn l2_matches_hand_computation() {
        let queries = Matrix::new(2, vec![0.9, 0.1, 4.0, 4.0]);
        let gt = exact_knn(Metric::L2, &base(), &queries, 3, &|| {}).unwrap();
        // q0 = (0.9, 0.1): d² to 1 = 0.02, to 0 = 0.82, to 2 = 4.42.
        assert_eq!(gt.row(0), &[1, 0, 2]);
        // q1 = (4, 4): d² to 4 = 2, to 2 = 20, to 1 = 25.
        assert_eq!(gt.row(1), &[4, 2, 1]);
    }

    #[test]
    fn dot_prefers_large_inner_product() {
        let queries = Matrix::new(2, vec![1.0, 0.0]);
        let gt = exact_knn(Metric::Dot, &base(), &queries, 3, &|| {}).unwrap();
        // a·q: row 4 = 5, row 1 = 1, rows 0 and 2 tie at 0 -> lower row wins.
        assert_eq!(gt.row(0), &[4, 1, 0]);
    }

    #[test]
    fn cosine_ignores_magnitude() {
        let queries = Matrix::new(2, vec![-1.0, 0.1]);
        // Exclude the zero vector (row 0) whose cosine is undefined.
        let b = Matrix::new(2, base().as_slice()[2..].to_vec());
        let gt = exact_knn(Metric::Cosine, &b, &queries, 2, &|| {}).unwrap();
        // Angles from (-1, 0.1): original row 3 (-3,0) is ~6 degrees away,
        // row 2 (0,2) ~84 degrees; rows are shifted by one after dropping row 0.
        assert_eq!(gt.row(0), &[2, 1]);
    }

    #[test]
    fn multithreaded_matches_single_thread_and_counts_progress() {
        let spec: crate::synthetic::SyntheticSpec = "2000,12,6".parse().unwrap();
        let set = crate::synthetic::generate(&spec, 64, 3);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let parallel = exact_knn(Metric::L2, &set.base, &set.queries, 10, &|| {
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(done.into_inner(), 64);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let serial = pool
            .install(|| exact_knn(Metric::L2, &set.base, &set.queries, 10, &|| {}))
            .unwrap();
        assert_eq!(parallel, serial);
        // Spot-check one query against a full sort.
        let q = set.queries.row(5);
        let mut all: Vec<(f32, i32)> = set
            .base
            .iter_rows()
            .enumerate()
            .map(|(i, b)| (kyro_engine::distance::distance(Metric::L2, q, b), i as i32))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let expected: Vec<i32> = all[..10].iter().map(|&(_, i)| i).collect();
        assert_eq!(parallel.row(5), expected.as_slice());
    }

    #[test]
    fn rejects_bad_arguments() {
        let q = Matrix::new(3, vec![0.0; 3]);
        assert!(matches!(
            exact_knn(Metric::L2, &base(), &q, 1, &|| {}),
            Err(GroundTruthError::DimMismatch { base: 2, query: 3 })
        ));
        let q = Matrix::new(2, vec![0.0; 2]);
        assert!(matches!(
            exact_knn(Metric::L2, &base(), &q, 6, &|| {}),
            Err(GroundTruthError::BadK { k: 6, n: 5 })
        ));
        assert!(exact_knn(Metric::L2, &base(), &q, 0, &|| {}).is_err());
    }
}
