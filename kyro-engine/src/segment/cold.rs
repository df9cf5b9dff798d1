//! [`ColdSegment`]: an HNSW index sealed into files and searched from mmap.
//!
//! A segment directory holds five files (see `docs/storage.md`):
//! `graph.hnsw`, `vectors.f32`, `vectors.i8` (only when quantised), `ids.u64`
//! and `deleted.bits`. Opening maps them, verifies headers and checksums, and
//! checks every link and offset once, so that searching afterwards can index
//! the arrays without any further checks failing. Nothing is rebuilt.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::file::{write_file, FileKind, MappedFile, SegmentError, HEADER_BYTES};
use crate::distance::{prepared_distance, Metric, ScalarQuantizer};
use crate::error::EngineError;
use crate::hnsw::search::{
    reachable_on_layer0, search_graph, Candidate, GraphQuery, NeighborLists, PointRows,
    SearchScratch,
};
use crate::hnsw::{GraphExport, HnswIndex};
use crate::index::{
    keep_k_nearest, slot_filter, IndexConfig, InternalFilter, LabelFilter, Neighbor,
    PreparedVector, SearchParams,
};

const GRAPH_FILE: &str = "graph.hnsw";
const VECTORS_F32_FILE: &str = "vectors.f32";
const VECTORS_I8_FILE: &str = "vectors.i8";
const IDS_FILE: &str = "ids.u64";
const DELETED_FILE: &str = "deleted.bits";

/// `u64` words of parameters at the start of the graph payload.
const META_WORDS: usize = 16;

/// Where each array sits inside the graph payload (byte offsets).
#[derive(Debug, Clone, Copy)]
struct GraphSections {
    levels: usize,
    links0: usize,
    upper_start: usize,
    upper: usize,
    upper_records: usize,
}

impl GraphSections {
    fn new(nodes: usize, m0: usize) -> Self {
        let levels = META_WORDS * 8;
        let links0 = levels + nodes.next_multiple_of(4);
        let upper_start = links0 + nodes * (1 + m0) * 4;
        let upper = upper_start + nodes * 4;
        Self {
            levels,
            links0,
            upper_start,
            upper,
            upper_records: 0,
        }
    }
}

/// An immutable HNSW segment searched straight from memory-mapped files.
pub struct ColdSegment {
    dir: PathBuf,
    metric: Metric,
    dim: usize,
    m: usize,
    m0: usize,
    entry: Option<(u32, usize)>,
    nodes: usize,
    live: usize,
    quantizer: Option<ScalarQuantizer>,
    sections: GraphSections,
    graph: MappedFile,
    vectors: MappedFile,
    quantized: Option<MappedFile>,
    ids: MappedFile,
    deleted: MappedFile,
    /// The `f32` file opened for `pread`, when rescoring reads it that way
    /// (segments with an `i8` copy).
    f32_reader: Option<std::fs::File>,
    scratch_pool: Mutex<Vec<SearchScratch>>,
}

impl ColdSegment {
    /// Writes `index` as a segment into `dir` (created if missing). The index
    /// is read under its storage lock, so the segment is a consistent copy.
    pub fn write(index: &HnswIndex, dir: &Path) -> Result<(), SegmentError> {
        Self::write_with(index, dir, false)
    }

    /// Like [`ColdSegment::write`]; with `quantize`, an index traversed in
    /// `f32` is given an `i8` copy too (its quantiser calibrated on the
    /// index's own vectors), so that the segment is traversed in `i8` and
    /// rescored from the `f32` file. An index that already has an `i8` copy
    /// writes it as it is.
    pub fn write_with(index: &HnswIndex, dir: &Path, quantize: bool) -> Result<(), SegmentError> {
        std::fs::create_dir_all(dir).map_err(|e| SegmentError::io(dir, e))?;
        index.export(&mut |export: GraphExport<'_>| {
            if !quantize || export.quantized.is_some() {
                return write_export(&export, dir);
            }
            let quantizer = ScalarQuantizer::calibrate(export.metric, export.dim, export.vectors);
            let mut codes = vec![0i8; export.vectors.len()];
            for (row, out) in export
                .vectors
                .chunks_exact(export.dim)
                .zip(codes.chunks_exact_mut(export.dim))
            {
                quantizer.quantize_into(row, out);
            }
            let export = GraphExport {
                quantizer: Some(quantizer),
                quantized: Some(&codes),
                ..export
            };
            write_export(&export, dir)
        })
    }

    /// Opens the segment in `dir`, verifying every file.
    pub fn open(dir: &Path) -> Result<Self, SegmentError> {
        let graph = MappedFile::open(&dir.join(GRAPH_FILE), FileKind::Graph)?;
        let corrupt = |reason: String| SegmentError::corrupt(graph.path(), reason);
        let meta: &[u64] = graph.section(0, META_WORDS)?;
        let metric = match meta[0] {
            1 => Metric::Cosine,
            2 => Metric::Dot,
            3 => Metric::L2,
            other => return Err(corrupt(format!("unknown metric code {other}"))),
        };
        let to_usize = |v: u64, what: &str| {
            usize::try_from(v).map_err(|_| corrupt(format!("{what} {v} out of range")))
        };
        let dim = to_usize(meta[1], "dim")?;
        let m = to_usize(meta[2], "m")?;
        let m0 = to_usize(meta[3], "m0")?;
        let nodes = to_usize(meta[7], "nodes")?;
        if dim == 0 || m == 0 || m0 == 0 || nodes > u32::MAX as usize {
            return Err(corrupt(format!(
                "bad parameters dim={dim} m={m} m0={m0} nodes={nodes}"
            )));
        }
        let entry = (meta[4] == 1).then_some((meta[5] as u32, meta[6] as usize));
        let quantizer = (meta[11] == 1).then(|| {
            ScalarQuantizer::from_parameters(
                metric,
                f32::from_bits(meta[9] as u32),
                f32::from_bits(meta[10] as u32),
            )
        });
        let mut sections = GraphSections::new(nodes, m0);
        sections.upper_records = to_usize(meta[8], "upper records")?;

        let vectors = open_rows(
            &dir.join(VECTORS_F32_FILE),
            FileKind::VectorsF32,
            nodes,
            dim,
        )?;
        let quantized = match quantizer {
            Some(_) => Some(open_rows(
                &dir.join(VECTORS_I8_FILE),
                FileKind::VectorsI8,
                nodes,
                dim,
            )?),
            None => None,
        };
        let f32_reader = match quantizer {
            Some(_) => {
                let path = dir.join(VECTORS_F32_FILE);
                Some(std::fs::File::open(&path).map_err(|e| SegmentError::io(&path, e))?)
            }
            None => None,
        };
        let ids = open_rows(&dir.join(IDS_FILE), FileKind::Ids, nodes, 1)?;
        let deleted = MappedFile::open(&dir.join(DELETED_FILE), FileKind::Deleted)?;
        deleted.section::<u64>(0, nodes.div_ceil(64))?;

        let segment = Self {
            dir: dir.to_path_buf(),
            metric,
            dim,
            m,
            m0,
            entry,
            nodes,
            live: 0,
            quantizer,
            sections,
            graph,
            vectors,
            quantized,
            ids,
            deleted,
            f32_reader,
            scratch_pool: Mutex::new(Vec::new()),
        };
        segment.check_graph()?;
        let live = (0..nodes as u32)
            .filter(|&n| !segment.is_deleted_bit(n))
            .count();
        Ok(Self { live, ..segment })
    }

    /// Checks that every level, offset, count and link of the graph is in
    /// range, so that searches never index out of bounds.
    fn check_graph(&self) -> Result<(), SegmentError> {
        let corrupt = |reason: String| SegmentError::corrupt(self.graph.path(), reason);
        let s = self.sections;
        let levels: &[u8] = self.graph.section(s.levels, self.nodes)?;
        let links0: &[u32] = self.graph.section(s.links0, self.nodes * (1 + self.m0))?;
        let upper_start: &[u32] = self.graph.section(s.upper_start, self.nodes)?;
        let upper: &[u32] = self
            .graph
            .section(s.upper, s.upper_records * (1 + self.m))?;
        let bad_link = |ids: &[u32]| ids.iter().any(|&id| id as usize >= self.nodes);
        for node in 0..self.nodes {
            let record = &links0[node * (1 + self.m0)..(node + 1) * (1 + self.m0)];
            if record[0] as usize > self.m0 || bad_link(&record[1..=record[0] as usize]) {
                return Err(corrupt(format!("node {node}: bad layer-0 list")));
            }
            let level = usize::from(levels[node]);
            if level == 0 {
                continue;
            }
            let first = upper_start[node] as usize;
            if first + level > s.upper_records {
                return Err(corrupt(format!("node {node}: upper records out of range")));
            }
            for l in 0..level {
                let record = &upper[(first + l) * (1 + self.m)..(first + l + 1) * (1 + self.m)];
                if record[0] as usize > self.m || bad_link(&record[1..=record[0] as usize]) {
                    return Err(corrupt(format!("node {node}: bad layer-{} list", l + 1)));
                }
            }
        }
        if let Some((node, level)) = self.entry {
            if node as usize >= self.nodes || usize::from(levels[node as usize]) != level {
                return Err(corrupt(format!(
                    "entry point {node} at level {level} is not in the graph"
                )));
            }
        }
        Ok(())
    }

    /// The segment's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The metric the segment's distances use.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Live (not deleted) points.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no live point is stored.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The `k` nearest live points to `query` that pass the filter.
    pub fn search_with(
        &self,
        query: &[f32],
        params: &SearchParams<'_>,
    ) -> Result<Vec<Neighbor>, EngineError> {
        params.validate()?;
        let prepared = self.prepare_once(query)?;
        Ok(self.search_prepared(prepared.as_slice(), params.k, params.ef, params.filter))
    }

    /// Like [`ColdSegment::search_with`], with the filter over external ids
    /// (labels) instead of internal slots.
    pub fn search_by_label(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        allow: Option<LabelFilter<'_>>,
    ) -> Result<Vec<Neighbor>, EngineError> {
        SearchParams::new(k, ef).validate()?;
        let prepared = self.prepare_once(query)?;
        Ok(self.search_prepared_by_label(&prepared, k, ef, allow))
    }

    /// [`ColdSegment::search_by_label`] with a query prepared for this
    /// segment's shape and `k`/`ef` already validated (the storage engine
    /// prepares a query once for all its segments).
    pub fn search_prepared_by_label(
        &self,
        query: &PreparedVector,
        k: usize,
        ef: usize,
        allow: Option<LabelFilter<'_>>,
    ) -> Vec<Neighbor> {
        debug_assert_eq!(query.as_slice().len(), self.dim);
        let ids = self.ids();
        let by_slot = allow.map(|allow| slot_filter(allow, |slot| ids.get(slot as usize).copied()));
        let filter: Option<InternalFilter<'_>> = by_slot.as_ref().map(|f| f as InternalFilter<'_>);
        self.search_prepared(query.as_slice(), k, ef, filter)
    }

    /// Exact distances from `query` to the live points in `slots`, the `k`
    /// nearest first; slots out of range or deleted are skipped.
    ///
    /// With an `i8` copy the scan ranks every slot by its `i8` distance
    /// (a quarter of the memory traffic of the `f32` rows, and no fault on
    /// the `f32` mapping) and rescores the best few (`exact_rescore_count`)
    /// exactly from the `f32` file, as the graph walk does. A scan of few
    /// points reads their `f32` rows directly.
    pub fn score_slots(
        &self,
        query: &[f32],
        k: usize,
        slots: &mut dyn Iterator<Item = u32>,
    ) -> Result<Vec<Neighbor>, EngineError> {
        SearchParams::new(k, k).validate()?;
        let prepared = self.prepare_once(query)?;
        Ok(self.score_prepared_slots(&prepared, k, slots))
    }

    /// [`ColdSegment::score_slots`] with a prepared query and a validated `k`.
    pub fn score_prepared_slots(
        &self,
        query: &PreparedVector,
        k: usize,
        slots: &mut dyn Iterator<Item = u32>,
    ) -> Vec<Neighbor> {
        debug_assert_eq!(query.as_slice().len(), self.dim);
        let prepared = query.as_slice();
        let live: Vec<u32> = slots
            .filter(|&slot| (slot as usize) < self.nodes && !self.is_deleted_bit(slot))
            .collect();
        let rescored = exact_rescore_count(k);
        let scored: Vec<Candidate> = match &self.quantizer {
            // Few points: their f32 rows cost less than the rescoring reads.
            Some(quantizer)
                if self.quantized.is_some() && live.len() > rescored * SMALL_SCAN_FACTOR =>
            {
                let query_i8 = quantizer.quantize(prepared);
                let mut ranked: Vec<Candidate> = live
                    .iter()
                    .map(|&slot| Candidate {
                        distance: self
                            .i8_row(slot)
                            .map_or(f32::INFINITY, |row| quantizer.distance(&query_i8, row)),
                        node: slot,
                    })
                    .collect();
                keep_nearest_candidates(&mut ranked, rescored);
                for candidate in &mut ranked {
                    candidate.distance =
                        self.rescore_distance(self.metric, prepared, candidate.node);
                }
                ranked
            }
            _ => live
                .iter()
                .map(|&slot| Candidate {
                    distance: prepared_distance(self.metric, prepared, self.f32_row(slot)),
                    node: slot,
                })
                .collect(),
        };
        let ids = self.ids();
        let mut nearest: Vec<Neighbor> = scored
            .into_iter()
            .filter_map(|c| {
                ids.get(c.node as usize).map(|&id| Neighbor {
                    id,
                    distance: c.distance,
                })
            })
            .collect();
        keep_k_nearest(&mut nearest, k);
        nearest
    }

    /// Number of slots (live and deleted) in the segment.
    pub fn slots(&self) -> usize {
        self.nodes
    }

    /// The external id stored in `slot`, if the slot exists.
    pub fn label(&self, slot: u32) -> Option<u64> {
        self.ids().get(slot as usize).copied()
    }

    /// True when `slot` was deleted when the segment was written.
    pub fn is_deleted(&self, slot: u32) -> bool {
        self.is_deleted_bit(slot)
    }

    /// The stored (prepared) `f32` vector of `slot`.
    pub fn vector(&self, slot: u32) -> Option<&[f32]> {
        ((slot as usize) < self.nodes).then(|| self.f32_row(slot))
    }

    /// Labels of the live (not deleted) points that no search can reach:
    /// not connected on layer 0 to the entry point. A sound segment has
    /// none. One walk over the graph.
    pub fn unreachable_ids(&self) -> Vec<u64> {
        let reached = reachable_on_layer0(self, self.nodes, self.entry.map(|(node, _)| node));
        let ids = self.ids();
        (0..self.nodes as u32)
            .filter(|&slot| !reached[slot as usize] && !self.is_deleted_bit(slot))
            .filter_map(|slot| ids.get(slot as usize).copied())
            .collect()
    }

    /// Bytes of the segment's files (mapped, not necessarily resident).
    pub fn file_bytes(&self) -> u64 {
        [&self.graph, &self.vectors, &self.ids, &self.deleted]
            .into_iter()
            .chain(self.quantized.as_ref())
            .map(|f| f.payload().len() as u64)
            .sum()
    }

    fn ids(&self) -> &[u64] {
        // Validated at open: the ids file has exactly `nodes` rows.
        self.ids.section(0, self.nodes).unwrap_or_default()
    }

    /// The query in this segment's stored form (what
    /// [`IndexConfig::prepare_once`] does for an index of this shape).
    fn prepare_once(&self, query: &[f32]) -> Result<PreparedVector, EngineError> {
        IndexConfig::new(self.dim, self.metric).prepare_once(query)
    }

    fn search_prepared(
        &self,
        prepared: &[f32],
        k: usize,
        ef: usize,
        filter: Option<InternalFilter<'_>>,
    ) -> Vec<Neighbor> {
        let Some(entry) = self.entry else {
            return Vec::new();
        };
        let graph_query = GraphQuery {
            metric: self.metric,
            vector: prepared,
            quantizer: self.quantizer.as_ref(),
            ef: ef.max(k),
            filter,
            stop_at: None,
        };
        let mut scratch = self
            .scratch_pool
            .lock()
            .pop()
            .unwrap_or_else(SearchScratch::new);
        let mut found = search_graph(self, self, entry, self.nodes, &graph_query, &mut scratch);
        self.scratch_pool.lock().push(scratch);
        found.sort_unstable();
        let ids = self.ids();
        found
            .iter()
            .take(k)
            .filter_map(|c| {
                ids.get(c.node as usize).map(|&id| Neighbor {
                    id,
                    distance: c.distance,
                })
            })
            .collect()
    }

    fn is_deleted_bit(&self, node: u32) -> bool {
        let words: &[u64] = self
            .deleted
            .section(0, self.nodes.div_ceil(64))
            .unwrap_or_default();
        words
            .get(node as usize / 64)
            .is_some_and(|w| w & (1 << (node % 64)) != 0)
    }
}

impl NeighborLists for ColdSegment {
    fn neighbors_into(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        let s = self.sections;
        // Validated at open: these sections exist and every count and link is
        // in range, so the fallbacks below never trigger.
        let record: &[u32] = if level == 0 {
            let width = 1 + self.m0;
            self.graph
                .section(s.links0 + node as usize * width * 4, width)
                .unwrap_or_default()
        } else {
            let starts: &[u32] = self
                .graph
                .section(s.upper_start, self.nodes)
                .unwrap_or_default();
            let first = starts.get(node as usize).map_or(0, |&f| f as usize);
            let width = 1 + self.m;
            self.graph
                .section(s.upper + (first + level - 1) * width * 4, width)
                .unwrap_or_default()
        };
        if let Some((&count, ids)) = record.split_first() {
            out.extend_from_slice(&ids[..(count as usize).min(ids.len())]);
        }
    }
}

impl PointRows for ColdSegment {
    fn f32_row(&self, node: u32) -> &[f32] {
        self.vectors
            .section(node as usize * self.dim * 4, self.dim)
            .unwrap_or_default()
    }

    fn i8_row(&self, node: u32) -> Option<&[i8]> {
        self.quantized
            .as_ref()
            .and_then(|q| q.section(node as usize * self.dim, self.dim).ok())
    }

    fn is_deleted(&self, node: u32) -> bool {
        self.is_deleted_bit(node)
    }

    /// With an `i8` copy, rescoring reads the `f32` row with `pread` instead
    /// of through the mapping: a fault on the mapping would also map every
    /// neighbouring page already in the page cache (the kernel's
    /// fault-around), and the resident set of a serving process would grow
    /// to the whole `f32` file (measured: 1.5 GB of 1.5 GB on 1M × 384,
    /// `docs/benchmarks.md`). The page cache still serves the reads.
    fn rescore_distance(&self, metric: Metric, query: &[f32], node: u32) -> f32 {
        let Some(file) = &self.f32_reader else {
            return prepared_distance(metric, query, self.f32_row(node));
        };
        RESCORE_ROW.with(|row| {
            let mut row = row.borrow_mut();
            row.resize(self.dim, 0.0);
            let offset = (HEADER_BYTES + node as usize * self.dim * 4) as u64;
            match file.read_exact_at(bytemuck::cast_slice_mut(row.as_mut_slice()), offset) {
                Ok(()) => prepared_distance(metric, query, &row),
                // Verified at open, so a failed read means the file changed
                // or the disk failed: rank the point last rather than guess.
                Err(_) => f32::INFINITY,
            }
        })
    }
}

/// How many of an exact scan's `i8`-ranked points are rescored from the
/// `f32` file for `k` hits: the `i8` distance only ranks, and a true
/// neighbour it places a little too far must still be rescored.
fn exact_rescore_count(k: usize) -> usize {
    k.saturating_mul(EXACT_RESCORE_FACTOR)
        .max(k.saturating_add(EXACT_RESCORE_MIN_EXTRA))
}

const EXACT_RESCORE_FACTOR: usize = 4;
const EXACT_RESCORE_MIN_EXTRA: usize = 32;
/// An exact scan of at most this many times the rescored count reads the
/// `f32` rows directly (measured on MiniLM, `docs/benchmarks.md`).
const SMALL_SCAN_FACTOR: usize = 16;

/// Keeps the `n` nearest of `candidates` (in no particular order).
fn keep_nearest_candidates(candidates: &mut Vec<Candidate>, n: usize) {
    if candidates.len() > n {
        candidates.select_nth_unstable(n);
        candidates.truncate(n);
    }
}

thread_local! {
    /// One `f32` row read for rescoring, reused across calls.
    static RESCORE_ROW: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn open_rows(
    path: &Path,
    kind: FileKind,
    rows: usize,
    width: usize,
) -> Result<MappedFile, SegmentError> {
    let file = MappedFile::open(path, kind)?;
    if file.rows() != rows as u64 || file.width() != width as u64 {
        return Err(SegmentError::corrupt(
            path,
            format!(
                "{}×{} rows, the graph expects {rows}×{width}",
                file.rows(),
                file.width()
            ),
        ));
    }
    Ok(file)
}

fn write_export(export: &GraphExport<'_>, dir: &Path) -> Result<(), SegmentError> {
    let nodes = export.nodes;
    let dim = export.dim;
    write_file(
        &dir.join(VECTORS_F32_FILE),
        FileKind::VectorsF32,
        nodes as u64,
        dim as u64,
        bytemuck::cast_slice(export.vectors),
    )?;
    if let Some(q) = export.quantized {
        write_file(
            &dir.join(VECTORS_I8_FILE),
            FileKind::VectorsI8,
            nodes as u64,
            dim as u64,
            bytemuck::cast_slice(q),
        )?;
    }
    write_file(
        &dir.join(IDS_FILE),
        FileKind::Ids,
        nodes as u64,
        1,
        bytemuck::cast_slice(&export.labels),
    )?;
    write_file(
        &dir.join(DELETED_FILE),
        FileKind::Deleted,
        nodes as u64,
        1,
        bytemuck::cast_slice(&export.deleted),
    )?;

    let mut meta = [0u64; META_WORDS];
    meta[0] = match export.metric {
        Metric::Cosine => 1,
        Metric::Dot => 2,
        Metric::L2 => 3,
    };
    meta[1] = dim as u64;
    meta[2] = export.m as u64;
    meta[3] = export.m0 as u64;
    if let Some((node, level)) = export.entry {
        meta[4] = 1;
        meta[5] = u64::from(node);
        meta[6] = level as u64;
    }
    meta[7] = nodes as u64;
    meta[8] = (export.upper.len() / (1 + export.m)) as u64;
    if let Some(q) = export.quantizer {
        let (offset, scale) = q.parameters();
        meta[9] = u64::from(offset.to_bits());
        meta[10] = u64::from(scale.to_bits());
        meta[11] = 1;
    }
    let sections = GraphSections::new(nodes, export.m0);
    let mut payload = Vec::with_capacity(sections.upper + export.upper.len() * 4);
    payload.extend_from_slice(bytemuck::cast_slice(&meta));
    payload.extend_from_slice(&export.levels);
    payload.resize(sections.links0, 0);
    payload.extend_from_slice(bytemuck::cast_slice(&export.links0));
    payload.extend_from_slice(bytemuck::cast_slice(&export.upper_start));
    payload.extend_from_slice(bytemuck::cast_slice(&export.upper));
    write_file(
        &dir.join(GRAPH_FILE),
        FileKind::Graph,
        nodes as u64,
        1,
        &payload,
    )
}
