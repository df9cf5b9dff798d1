//! `kyro-bench`: the KyroDB benchmark command line.
//!
//! - `ann`: build an HNSW index once, then sweep `ef` and report recall@k,
//!   single-thread QPS and latency percentiles (table, JSON, SVG).
//! - `gt`: exact brute-force ground truth to an `.ivecs` file.
//! - `synth`: write a seeded synthetic dataset (and optionally its ground
//!   truth) so other engines can be run on the very same vectors.
//! - `plot`: draw several result files as recall/QPS curves on one chart.
//! - `filter`: filtered search through the storage engine, per selectivity.
//! - `ann --storage DIR`: the `ann` sweep through the full storage engine.
//! - `write`: write throughput through the storage engine under an fsync
//!   policy.
//! - `crash-writer`: internal, writes to a storage instance until killed
//!   (the recovery measurement of `ann --storage`).
//! - `load`: gRPC load generator for kyro-server (or the same load
//!   in-process): search/insert/get at a target rate or flat out.
//! - `embed`: text-embedding throughput and exactness (`kyro-embed`), in
//!   batches or through its micro-batching service.
//! - `cache`: replay seeded Zipf and shifting traces through KyroDB's
//!   adaptive cache, LRU and moka, and report hit ratios.
//!
//! Progress bars go to stderr (and hide themselves when it is not a
//! terminal); results go to stdout.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use kyro_engine::storage::PlannerConfig;
use kyro_engine::{HnswIndex, HnswParams, IndexConfig, Metric, Quantization, VectorIndex};
use rayon::prelude::*;

use kyro_bench::cache_replay::{self, CacheReport, CacheRun, Policy};
use kyro_bench::dataset::{self, Matrix};
use kyro_bench::groundtruth::exact_knn;
use kyro_bench::plot::{plot_curves, Curve};
use kyro_bench::report::{AnnReport, CurveFile, RunReport};
use kyro_bench::stats::{human_bytes, peak_rss_bytes};
use kyro_bench::synthetic::{self, SyntheticSpec};
use kyro_bench::traces::TraceKind;

/// The same allocator as `kyro-server`, so that in-process baselines and
/// server figures differ only by what the server adds.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod embed_runs;
mod load_runs;
mod storage_runs;

#[derive(Parser)]
#[command(name = "kyro-bench", version, about = "KyroDB benchmark harness")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an HNSW index and sweep ef: recall@k, QPS and latency per ef.
    Ann(AnnArgs),
    /// Compute exact top-k ground truth by brute force and write it as .ivecs.
    Gt(GtArgs),
    /// Write a seeded synthetic dataset as .fvecs (and optionally its ground truth).
    Synth(SynthArgs),
    /// Plot one or more result JSON files as recall/QPS curves in one SVG.
    Plot(PlotArgs),
    /// Filtered search through the storage engine: recall, QPS and plan per selectivity.
    Filter(FilterArgs),
    /// Write throughput through the storage engine under an fsync policy.
    Write(WriteArgs),
    /// Internal: write to a storage instance until killed (used by `ann --storage`).
    #[command(hide = true)]
    CrashWriter(CrashWriterArgs),
    /// Replay seeded Zipf and shifting traces through KyroDB's cache, LRU
    /// and moka at 0.5 %, 1 % and 10 % of the keys; report hit ratios.
    Cache(CacheArgs),
    /// gRPC load generator for kyro-server (or the same load in-process):
    /// concurrent search/insert/get at a target rate or flat out, with
    /// HdrHistogram latencies, a progress line, a final table and JSON.
    Load(load_runs::LoadArgs),
    /// Text embeddings (all-MiniLM-L6-v2): texts/s, tokens/s, p50/p99 per
    /// batch, cores used, cosine to reference vectors; or N concurrent
    /// single-text callers through the micro-batching service.
    Embed(embed_runs::EmbedArgs),
}

/// Distance metric, as named on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum MetricArg {
    /// 1 - cosine similarity.
    Cosine,
    /// Negated inner product.
    Dot,
    /// Squared Euclidean distance.
    L2,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Cosine => Metric::Cosine,
            MetricArg::Dot => Metric::Dot,
            MetricArg::L2 => Metric::L2,
        }
    }
}

/// Graph traversal precision, as named on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum QuantizationArg {
    /// Exact f32 distances.
    None,
    /// i8 scalar-quantised traversal with f32 rescoring.
    I8,
}

impl From<QuantizationArg> for Quantization {
    fn from(q: QuantizationArg) -> Self {
        match q {
            QuantizationArg::None => Quantization::None,
            QuantizationArg::I8 => Quantization::I8,
        }
    }
}

/// Where `ann` gets its vectors: files, or a generated set.
#[derive(Args)]
#[command(group(ArgGroup::new("source").required(true).args(["base", "synthetic"])))]
struct SourceArgs {
    /// Base vectors (.fvecs or .bvecs); each vector's id is its row number.
    /// The report names the dataset after the file stem, or after the
    /// directory when the file is called base.*.
    #[arg(long, requires = "query", value_name = "FILE")]
    base: Option<PathBuf>,
    /// Query vectors (.fvecs or .bvecs).
    #[arg(long, requires = "base", value_name = "FILE")]
    query: Option<PathBuf>,
    /// Ground truth (.ivecs, row numbers of the base file, nearest first).
    /// Computed by brute force when omitted.
    #[arg(long, requires = "base", value_name = "FILE")]
    gt: Option<PathBuf>,
    /// Generate a clustered Gaussian set instead of reading files.
    #[arg(long, value_name = "N,DIM,CLUSTERS")]
    synthetic: Option<SyntheticSpec>,
    /// Number of synthetic queries.
    #[arg(long, default_value_t = 1000, requires = "synthetic")]
    queries: usize,
    /// Seed for synthetic data and for the HNSW level generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Use only the first N base vectors.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Use only the first N queries.
    #[arg(long, value_name = "N")]
    query_limit: Option<usize>,
}

#[derive(Args)]
struct AnnArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Distance metric.
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
    metric: MetricArg,
    /// HNSW M (layer 0 keeps 2*M links).
    #[arg(long, default_value_t = HnswParams::default().m)]
    m: usize,
    /// HNSW ef_construction.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    ef_construction: usize,
    /// After the build, every point a search with its own vector at this ef
    /// misses is linked in (0: no such pass; the storage engine uses its
    /// default ef).
    #[arg(long, default_value_t = HnswParams::default().findable_ef)]
    findable_ef: usize,
    /// Comma-separated search ef values, measured in this order.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,80,160,320")]
    ef: Vec<usize>,
    /// Neighbours per query (the k in recall@k).
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Threads for ground truth and the index build (searches use one).
    /// Defaults to all cores.
    #[arg(long)]
    threads: Option<usize>,
    /// Graph traversal precision.
    #[arg(long, value_enum, default_value_t = QuantizationArg::None)]
    quantization: QuantizationArg,
    /// Engine label for the report and plot legend
    /// (default: kyrodb, or kyrodb-i8 with --quantization i8).
    #[arg(long)]
    label: Option<String>,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a recall/QPS curve as SVG.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Run through the full storage engine in this (absent or empty)
    /// directory: insert through the engine API, seal to the cold tier,
    /// close, reopen, search; then time a reopen after a SIGKILLed writer.
    /// --quantization then chooses the cold tier's traversal.
    #[arg(long, value_name = "DIR")]
    storage: Option<PathBuf>,
    /// With --storage: always, never or interval_ms=N.
    #[arg(long, default_value = "never", requires = "storage")]
    fsync: String,
    /// With --storage: serve the instance a previous run left in DIR
    /// (reopen and search only) instead of building one.
    #[arg(long, requires = "storage")]
    reuse_storage: bool,
}

#[derive(Args)]
struct FilterArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Distance metric.
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
    metric: MetricArg,
    /// Comma-separated fractions of the base points the filter matches.
    #[arg(long, value_delimiter = ',', default_value = "0.001,0.01,0.1,0.5,1.0")]
    selectivity: Vec<f64>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Search ef of graph plans.
    #[arg(long, default_value_t = 64)]
    ef: usize,
    /// HNSW M.
    #[arg(long, default_value_t = HnswParams::default().m)]
    m: usize,
    /// HNSW ef_construction.
    #[arg(long, default_value_t = HnswParams::default().ef_construction)]
    ef_construction: usize,
    /// Writer threads and ground-truth threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Filters matching at most this many points are scanned exactly (the
    /// planner's `exact_filter_matches`; a large value always scans, 0 with
    /// a selectivity of 0 walks the graph unless the namespace has fewer
    /// than 10,000 points).
    #[arg(long, default_value_t = PlannerConfig::default().exact_filter_matches)]
    exact_filter_matches: usize,
    /// Filters matching less than this fraction of the points are scanned
    /// exactly (the planner's `exact_filter_selectivity`).
    #[arg(long, default_value_t = PlannerConfig::default().exact_filter_selectivity)]
    exact_filter_selectivity: f64,
    /// Instance directory (default: a temporary one, removed afterwards).
    #[arg(long, value_name = "DIR")]
    storage: Option<PathBuf>,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct WriteArgs {
    /// Instance directory (default: a temporary one, removed afterwards).
    #[arg(long, value_name = "DIR")]
    storage: Option<PathBuf>,
    /// Vector dimension.
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// always, never or interval_ms=N.
    #[arg(long, default_value = "always")]
    fsync: String,
    /// Concurrent writer threads.
    #[arg(long, default_value_t = 8)]
    writers: usize,
    /// Points to write in all.
    #[arg(long, default_value_t = 20_000)]
    points: usize,
    /// Points per write call.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct CrashWriterArgs {
    #[arg(long)]
    storage: PathBuf,
    #[arg(long)]
    dim: usize,
    #[arg(long)]
    metric: String,
}

#[derive(Args)]
struct GtArgs {
    /// Base vectors (.fvecs or .bvecs).
    #[arg(long, value_name = "FILE")]
    base: PathBuf,
    /// Query vectors (.fvecs or .bvecs).
    #[arg(long, value_name = "FILE")]
    query: PathBuf,
    /// Distance metric (required: a ground-truth file does not record it).
    #[arg(long, value_enum)]
    metric: MetricArg,
    /// Neighbours per query.
    #[arg(long, default_value_t = 100)]
    k: usize,
    /// Output .ivecs file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Use only the first N base vectors.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Use only the first N queries.
    #[arg(long, value_name = "N")]
    query_limit: Option<usize>,
}

#[derive(Args)]
struct SynthArgs {
    /// Shape of the generated set.
    #[arg(long, value_name = "N,DIM,CLUSTERS")]
    synthetic: SyntheticSpec,
    /// Number of queries.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Random seed (same seed, same vectors as `ann --synthetic`).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output .fvecs for the base vectors.
    #[arg(long, value_name = "FILE")]
    out_base: PathBuf,
    /// Output .fvecs for the queries.
    #[arg(long, value_name = "FILE")]
    out_query: PathBuf,
    /// Also write exact ground truth (.ivecs) for --metric and --k.
    #[arg(long, value_name = "FILE")]
    out_gt: Option<PathBuf>,
    /// Metric for --out-gt.
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine, requires = "out_gt")]
    metric: MetricArg,
    /// Neighbours per query for --out-gt.
    #[arg(long, default_value_t = 100, requires = "out_gt")]
    k: usize,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct PlotArgs {
    /// Result files from `kyro-bench ann` or the anchors script; one curve each.
    #[arg(long, num_args = 1.., required = true, value_name = "FILE")]
    json: Vec<PathBuf>,
    /// Output SVG.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Chart title (default: dataset and metric of the first file).
    #[arg(long)]
    title: Option<String>,
    /// Write ef next to each point.
    #[arg(long)]
    annotate_ef: bool,
}

#[derive(Args)]
struct CacheArgs {
    /// Distinct keys the traces draw from.
    #[arg(long, default_value_t = 100_000)]
    keys: usize,
    /// Requests per trace.
    #[arg(long, default_value_t = 1_000_000)]
    requests: usize,
    /// Seed of the first trace (trace i uses seed + i).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ann(args) => run_ann(args),
        Command::Gt(args) => run_gt(args),
        Command::Synth(args) => run_synth(args),
        Command::Plot(args) => run_plot(args),
        Command::Filter(args) => run_filter(args),
        Command::Write(args) => run_write(args),
        Command::CrashWriter(args) => {
            let metric: Metric = args.metric.parse()?;
            storage_runs::run_crash_writer(&args.storage, args.dim, metric)
        }
        Command::Cache(args) => run_cache(args),
        Command::Load(args) => load_runs::run_load(args),
        Command::Embed(args) => embed_runs::run_embed(args),
    }
}

/// Resolves `--threads` and sizes rayon's global pool (used by the synthetic
/// generator and ground truth) to match, so one flag controls all CPU use.
fn setup_threads(threads: Option<usize>) -> Result<usize> {
    let threads = match threads {
        Some(0) => bail!("--threads must be at least 1"),
        Some(t) => t,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .context("configuring the rayon thread pool")?;
    Ok(threads)
}

/// Creates the parent directories of every output path. Done before any
/// work starts, so a typo in an output path fails in a second instead of
/// after an hour-long build.
fn create_output_dirs<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Result<()> {
    for path in paths {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating output directory {}", dir.display()))?;
        }
    }
    Ok(())
}

/// A progress bar with a consistent look; `len` may be fixed later.
pub(crate) fn progress_bar(len: u64, prefix: impl Into<Cow<'static, str>>) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>9} [{elapsed_precise}] [{bar:40}] {human_pos}/{human_len} ({rate}, eta {eta})",
    )
    .map(|s| {
        s.progress_chars("=> ")
            // indicatif's own {per_sec} prints four decimals ("4,212.1988/s").
            .with_key(
                "rate",
                |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", state.per_sec());
                },
            )
    })
    // The template is a constant, so this fallback only guards against an
    // indicatif upgrade changing the template syntax.
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(len).with_style(style);
    bar.set_prefix(prefix);
    bar
}

fn load_vectors(path: &Path, limit: Option<usize>, what: &'static str) -> Result<Matrix<f32>> {
    let bar = progress_bar(0, what);
    let start = Instant::now();
    let vectors = dataset::read_vectors_with_progress(path, limit, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })
    .with_context(|| format!("loading {what} vectors"))?;
    bar.finish_and_clear();
    eprintln!(
        "{what}: {} x {} from {} ({:.2} s)",
        vectors.rows(),
        vectors.dim(),
        path.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(vectors)
}

fn generate_synthetic(spec: &SyntheticSpec, queries: usize, seed: u64) -> synthetic::SyntheticSet {
    let bar = ProgressBar::new_spinner().with_message(format!("generating {}", spec.name()));
    let start = Instant::now();
    let set = synthetic::generate(spec, queries, seed);
    bar.finish_and_clear();
    eprintln!(
        "synthetic: {} base + {} queries, dim {}, {} clusters, seed {seed} ({:.2} s)",
        set.base.rows(),
        set.queries.rows(),
        spec.dim,
        spec.clusters,
        start.elapsed().as_secs_f64()
    );
    set
}

/// Exact ground truth with a progress bar, on the global rayon pool.
fn compute_ground_truth(
    metric: Metric,
    base: &Matrix<f32>,
    queries: &Matrix<f32>,
    k: usize,
) -> Result<Matrix<i32>> {
    let bar = progress_bar(queries.rows() as u64, "gt");
    let start = Instant::now();
    let gt = exact_knn(metric, base, queries, k, &|| bar.inc(1))
        .context("computing exact ground truth")?;
    bar.finish_and_clear();
    eprintln!(
        "ground truth: top-{k} {metric} for {} queries over {} vectors ({:.2} s)",
        queries.rows(),
        base.rows(),
        start.elapsed().as_secs_f64()
    );
    Ok(gt)
}

fn check_same_dim(base: &Matrix<f32>, queries: &Matrix<f32>) -> Result<()> {
    ensure!(
        base.dim() == queries.dim(),
        "base vectors have dimension {} but queries have dimension {}",
        base.dim(),
        queries.dim()
    );
    Ok(())
}

/// Checks a loaded ground truth against the data it will score: enough rows
/// and columns, and no ids outside the (possibly `--limit`ed) base set.
fn check_ground_truth(
    gt: &Matrix<i32>,
    path: &Path,
    n_queries: usize,
    n: usize,
    k: usize,
) -> Result<()> {
    ensure!(
        gt.rows() >= n_queries,
        "{}: {} rows of ground truth but {n_queries} queries",
        path.display(),
        gt.rows()
    );
    ensure!(
        gt.dim() >= k,
        "{}: ground truth has {} neighbours per query, --k {k} needs at least {k}",
        path.display(),
        gt.dim()
    );
    for q in 0..n_queries {
        if let Some(&bad) = gt.row(q)[..k]
            .iter()
            .find(|&&id| id < 0 || id as usize >= n)
        {
            bail!(
                "{}: query {q} lists neighbour {bad}, outside the {n} base vectors loaded; \
                 with --limit, omit --gt to recompute the ground truth on the subset",
                path.display()
            );
        }
    }
    Ok(())
}

/// The report name of a file-based dataset: the base file's stem, except
/// that the common layout `NAME/base.fvecs` is named after its directory
/// (every such dataset would otherwise be called "base").
/// `benches/anchors/run_anchors.py` applies the same rule.
fn dataset_name(base: &Path) -> String {
    let stem = base.file_stem().map_or_else(
        || "dataset".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    if stem.eq_ignore_ascii_case("base") {
        if let Some(dir) = base.parent().and_then(Path::file_name) {
            return dir.to_string_lossy().into_owned();
        }
    }
    stem
}

/// The vectors and ground truth one `ann` run works on.
struct Workload {
    name: String,
    base: Matrix<f32>,
    queries: Matrix<f32>,
    gt: Matrix<i32>,
}

fn load_workload(source: &SourceArgs, metric: Metric, k: usize) -> Result<Workload> {
    let (name, mut base, mut queries, gt_path) =
        match (&source.synthetic, &source.base, &source.query) {
            (Some(spec), _, _) => {
                let set = generate_synthetic(spec, source.queries, source.seed);
                (spec.name(), set.base, set.queries, None)
            }
            (None, Some(base_path), Some(query_path)) => {
                let name = dataset_name(base_path);
                let base = load_vectors(base_path, source.limit, "base")?;
                let queries = load_vectors(query_path, source.query_limit, "query")?;
                (name, base, queries, source.gt.as_deref())
            }
            // clap's `source` group and `requires` rules make this unreachable.
            _ => bail!("give either --base and --query, or --synthetic"),
        };
    // Files were already read with the limits; this applies them to
    // synthetic data (and is a no-op otherwise).
    if let Some(limit) = source.limit {
        base.truncate_rows(limit);
    }
    if let Some(limit) = source.query_limit {
        queries.truncate_rows(limit);
    }
    ensure!(!base.is_empty(), "no base vectors to index");
    ensure!(!queries.is_empty(), "no queries to run");
    check_same_dim(&base, &queries)?;
    ensure!(
        k <= base.rows(),
        "--k {k} exceeds the {} base vectors",
        base.rows()
    );

    let gt = match gt_path {
        Some(path) => {
            let gt =
                dataset::read_ivecs(path, Some(queries.rows())).context("loading ground truth")?;
            check_ground_truth(&gt, path, queries.rows(), base.rows(), k)?;
            eprintln!(
                "ground truth: {} x {} from {}",
                gt.rows(),
                gt.dim(),
                path.display()
            );
            gt
        }
        None => compute_ground_truth(metric, &base, &queries, k)?,
    };
    Ok(Workload {
        name,
        base,
        queries,
        gt,
    })
}

/// Runs every query once at `ef` on the calling thread. Returns the result
/// ids, per-query latencies in µs and the loop's wall time in seconds.
fn search_all(
    index: &HnswIndex,
    queries: &Matrix<f32>,
    k: usize,
    ef: usize,
    bar: &ProgressBar,
) -> Result<(Vec<Vec<u64>>, Vec<f64>, f64)> {
    let n = queries.rows();
    let mut results = Vec::with_capacity(n);
    let mut latencies = Vec::with_capacity(n);
    // Updating the bar every query would put indicatif in the measurement;
    // ~100 updates per pass are plenty for the eye.
    let tick = (n / 100).max(1);
    let start = Instant::now();
    for (i, query) in queries.iter_rows().enumerate() {
        let t = Instant::now();
        let found = index
            .search(query, k, ef)
            .with_context(|| format!("search failed for query {i} at ef {ef}"))?;
        latencies.push(t.elapsed());
        // Move the results aside and convert after the loop, so the timed
        // region holds only the search itself.
        results.push(found);
        if (i + 1) % tick == 0 {
            bar.inc(tick as u64);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let ids = results
        .iter()
        .map(|r| r.iter().map(|nb| nb.id).collect())
        .collect();
    let latencies_us = latencies.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    Ok((ids, latencies_us, wall))
}

fn run_ann(args: AnnArgs) -> Result<()> {
    ensure!(args.k > 0, "--k must be at least 1");
    ensure!(!args.ef.is_empty(), "--ef needs at least one value");
    create_output_dirs(args.json.iter().chain(&args.plot))?;
    let threads = setup_threads(args.threads)?;
    let metric = Metric::from(args.metric);
    let quantization = Quantization::from(args.quantization);
    let Workload {
        name,
        base,
        queries,
        gt,
    } = load_workload(&args.source, metric, args.k)?;
    let (n, dim, k) = (base.rows(), base.dim(), args.k);
    if let Some(dir) = &args.storage {
        let settings = storage_runs::StorageSettings {
            dir: dir.clone(),
            metric,
            hnsw: HnswParams {
                m: args.m,
                ef_construction: args.ef_construction,
                seed: args.source.seed,
                findable_ef: args.findable_ef,
            },
            quantization,
            fsync: args.fsync.parse()?,
            threads,
            reuse: args.reuse_storage,
            planner: PlannerConfig::default(),
        };
        let facts = storage_runs::run_ann_storage(&settings, base, &queries, &gt, k, &args.ef)?;
        let engine = args
            .label
            .unwrap_or_else(|| format!("kyrodb-storage-{quantization}"));
        let report = AnnReport {
            engine,
            dataset: name,
            n,
            dim,
            metric: metric.to_string(),
            m: args.m,
            ef_construction: args.ef_construction,
            threads,
            quantization: quantization.to_string(),
            build_seconds: facts.build_seconds,
            index_bytes: facts.cold_bytes,
            peak_rss_bytes: peak_rss_bytes(),
            runs: facts.runs,
            k,
            n_queries: queries.rows(),
            build_vectors_per_second: n as f64 / facts.build_seconds,
            bytes_per_vector: facts.cold_bytes as f64 / n as f64,
            open_seconds: Some(facts.open_seconds),
            open_after_kill_seconds: facts.open_after_kill_seconds,
            serving_rss_bytes: facts.serving_rss_bytes,
            flush_seconds: Some(facts.flush_seconds),
        };
        print_report(&report, 0, 0);
        println!(
            "storage flush {:.2} s, reopen {:.3} s, reopen after SIGKILL {}, serving peak RSS {} (raw f32 {})",
            facts.flush_seconds,
            facts.open_seconds,
            facts
                .open_after_kill_seconds
                .map_or_else(|| "n/a".to_string(), |s| format!("{s:.3} s")),
            report.serving_rss_bytes.map_or_else(|| "n/a".to_string(), human_bytes),
            human_bytes((n * dim * 4) as u64),
        );
        if let Some(path) = &args.json {
            report.write(path)?;
            eprintln!("wrote {}", path.display());
        }
        return Ok(());
    }

    let config = IndexConfig {
        dim,
        metric,
        hnsw: HnswParams {
            m: args.m,
            ef_construction: args.ef_construction,
            seed: args.source.seed,
            findable_ef: args.findable_ef,
        },
        quantization,
    };
    let bar = progress_bar(n as u64, "build");
    let start = Instant::now();
    let index = HnswIndex::build_parallel(config, base.as_slice(), None, threads, &|done| {
        bar.set_position(done as u64)
    })
    .context("building the HNSW index")?;
    let build_seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let memory = index.memory_usage();
    let index_bytes = memory.total() as u64;
    eprintln!(
        "build: {n} vectors in {build_seconds:.2} s ({:.0} vectors/s, {threads} threads), index {}",
        n as f64 / build_seconds,
        human_bytes(index_bytes)
    );
    ensure!(
        index.len() == n,
        "index holds {} points after building from {n} rows",
        index.len()
    );

    // The index keeps its own copy of the vectors; free ours so the search
    // phase runs with the memory footprint a server would have. (Peak RSS
    // still includes them: the peak happens during the build.)
    drop(base);

    // One untimed pass warms caches, page-faults the index in and lets the
    // CPU reach its steady clock before anything is measured.
    let warm = progress_bar(queries.rows() as u64, "warm-up");
    search_all(&index, &queries, k, args.ef[0], &warm)?;
    warm.finish_and_clear();

    let mut runs = Vec::with_capacity(args.ef.len());
    for &ef in &args.ef {
        let bar = progress_bar(queries.rows() as u64, format!("ef={ef}"));
        let (ids, latencies, wall) = search_all(&index, &queries, k, ef, &bar)?;
        bar.finish_and_clear();
        let run = RunReport::from_pass(ef, &ids, &gt, k, latencies, wall);
        eprintln!(
            "ef {:>5}: recall@{k} {:.4}, {:.0} QPS",
            run.ef, run.recall, run.qps
        );
        runs.push(run);
    }

    let engine = args.label.unwrap_or_else(|| match quantization {
        Quantization::None => "kyrodb".to_string(),
        Quantization::I8 => "kyrodb-i8".to_string(),
    });
    let report = AnnReport {
        engine,
        dataset: name,
        n,
        dim,
        metric: metric.to_string(),
        m: args.m,
        ef_construction: args.ef_construction,
        threads,
        quantization: quantization.to_string(),
        build_seconds,
        index_bytes,
        peak_rss_bytes: peak_rss_bytes(),
        runs,
        k,
        n_queries: queries.rows(),
        build_vectors_per_second: n as f64 / build_seconds,
        bytes_per_vector: index_bytes as f64 / n as f64,
        open_seconds: None,
        open_after_kill_seconds: None,
        serving_rss_bytes: None,
        flush_seconds: None,
    };
    print_report(
        &report,
        memory.vector_bytes as u64,
        memory.graph_bytes as u64,
    );

    if let Some(path) = &args.json {
        report.write(path)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        let curve = Curve {
            label: report.engine.clone(),
            points: report
                .runs
                .iter()
                .map(|r| (r.recall, r.qps, Some(r.ef)))
                .collect(),
        };
        let title = format!(
            "{} ({}, n={}, M={}, efC={})",
            report.dataset, report.metric, report.n, report.m, report.ef_construction
        );
        plot_curves(path, &title, &format!("recall@{k}"), &[curve], true)
            .with_context(|| format!("plotting to {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn print_report(r: &AnnReport, vector_bytes: u64, graph_bytes: u64) {
    println!();
    println!(
        "{} on {}: n={} dim={} metric={} M={} ef_construction={} quantization={}",
        r.engine, r.dataset, r.n, r.dim, r.metric, r.m, r.ef_construction, r.quantization
    );
    println!(
        "build   {:.2} s, {:.0} vectors/s on {} threads",
        r.build_seconds, r.build_vectors_per_second, r.threads
    );
    println!(
        "memory  index {} ({:.1} B/vector: vectors {}, graph {}), peak RSS {}",
        human_bytes(r.index_bytes),
        r.bytes_per_vector,
        human_bytes(vector_bytes),
        human_bytes(graph_bytes),
        r.peak_rss_bytes
            .map_or_else(|| "n/a".to_string(), human_bytes)
    );
    println!(
        "search  {} queries, k={}, 1 thread, one query at a time",
        r.n_queries, r.k
    );
    println!();
    let recall_header = format!("recall@{}", r.k);
    println!(
        "{:>6}  {:>10}  {:>10}  {:>9}  {:>9}  {:>9}",
        "ef", recall_header, "QPS", "p50 µs", "p99 µs", "mean µs"
    );
    for run in &r.runs {
        println!(
            "{:>6}  {:>10.4}  {:>10.0}  {:>9.1}  {:>9.1}  {:>9.1}",
            run.ef, run.recall, run.qps, run.p50_us, run.p99_us, run.mean_us
        );
    }
}

fn run_filter(args: FilterArgs) -> Result<()> {
    ensure!(args.k > 0, "--k must be at least 1");
    ensure!(
        !args.selectivity.is_empty(),
        "--selectivity needs at least one value"
    );
    create_output_dirs(args.json.iter())?;
    let threads = setup_threads(args.threads)?;
    let metric = Metric::from(args.metric);
    // The filter benchmark computes its own (filtered) ground truth.
    let (name, base, queries) = match (
        &args.source.synthetic,
        &args.source.base,
        &args.source.query,
    ) {
        (Some(spec), _, _) => {
            let set = generate_synthetic(spec, args.source.queries, args.source.seed);
            (spec.name(), set.base, set.queries)
        }
        (None, Some(base), Some(query)) => (
            dataset_name(base),
            load_vectors(base, args.source.limit, "base")?,
            load_vectors(query, args.source.query_limit, "query")?,
        ),
        _ => bail!("give either --base and --query, or --synthetic"),
    };
    check_same_dim(&base, &queries)?;
    let temp;
    let dir = match &args.storage {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary instance directory")?;
            temp.path().join("instance")
        }
    };
    let settings = storage_runs::StorageSettings {
        dir,
        metric,
        hnsw: HnswParams {
            m: args.m,
            ef_construction: args.ef_construction,
            seed: args.source.seed,
            ..HnswParams::default()
        },
        quantization: Quantization::I8,
        fsync: kyro_engine::storage::FsyncPolicy::Never,
        threads,
        reuse: false,
        planner: PlannerConfig {
            exact_filter_matches: args.exact_filter_matches,
            exact_filter_selectivity: args.exact_filter_selectivity,
            ..PlannerConfig::default()
        },
    };
    let report = storage_runs::run_filter(
        &settings,
        name,
        base,
        &queries,
        &args.selectivity,
        args.k,
        args.ef,
        args.source.seed,
    )?;
    println!();
    println!(
        "filter on {}: n={} dim={} k={} ef={}",
        report.dataset, report.n, report.dim, report.k, report.ef
    );
    println!(
        "{:>11}  {:>9}  {:>10}  {:>10}  {:>5}",
        "selectivity", "matching", "recall", "QPS", "plan"
    );
    for run in &report.runs {
        println!(
            "{:>11}  {:>9}  {:>10.4}  {:>10.0}  {:>5}",
            run.selectivity, run.matching, run.recall, run.qps, run.plan
        );
    }
    if let Some(path) = &args.json {
        report.write(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn run_write(args: WriteArgs) -> Result<()> {
    create_output_dirs(args.json.iter())?;
    let fsync: kyro_engine::storage::FsyncPolicy = args.fsync.parse()?;
    let temp;
    let dir = match &args.storage {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::tempdir().context("creating a temporary instance directory")?;
            temp.path().join("instance")
        }
    };
    let report =
        storage_runs::run_write(&dir, args.dim, fsync, args.writers, args.points, args.batch)?;
    println!(
        "write: fsync={} writers={} batch={} dim={}: {:.0} points/s, {:.0} calls/s, p50 {:.0} µs, p99 {:.0} µs, {} fsyncs for {} calls",
        report.fsync,
        report.writers,
        report.batch,
        report.dim,
        report.points_per_second,
        report.calls_per_second,
        report.p50_us,
        report.p99_us,
        report.fsyncs,
        report.points.div_ceil(report.batch)
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("serialising report")?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn run_gt(args: GtArgs) -> Result<()> {
    create_output_dirs([&args.out])?;
    let threads = setup_threads(args.threads)?;
    let metric = Metric::from(args.metric);
    let base = load_vectors(&args.base, args.limit, "base")?;
    let queries = load_vectors(&args.query, args.query_limit, "query")?;
    check_same_dim(&base, &queries)?;
    ensure!(
        (1..=base.rows()).contains(&args.k),
        "--k {} must be between 1 and the {} base vectors",
        args.k,
        base.rows()
    );
    eprintln!("using {threads} threads");
    let gt = compute_ground_truth(metric, &base, &queries, args.k)?;
    dataset::write_ivecs(&args.out, &gt).context("writing ground truth")?;
    println!(
        "wrote {} ({} queries x top-{} by {metric})",
        args.out.display(),
        gt.rows(),
        gt.dim()
    );
    Ok(())
}

fn run_synth(args: SynthArgs) -> Result<()> {
    setup_threads(args.threads)?;
    ensure!(args.queries > 0, "--queries must be at least 1");
    create_output_dirs(
        [&args.out_base, &args.out_query]
            .into_iter()
            .chain(&args.out_gt),
    )?;
    let set = generate_synthetic(&args.synthetic, args.queries, args.seed);
    dataset::write_fvecs(&args.out_base, &set.base).context("writing base vectors")?;
    dataset::write_fvecs(&args.out_query, &set.queries).context("writing queries")?;
    println!(
        "wrote {} ({} x {}) and {} ({} x {})",
        args.out_base.display(),
        set.base.rows(),
        set.base.dim(),
        args.out_query.display(),
        set.queries.rows(),
        set.queries.dim()
    );
    if let Some(path) = &args.out_gt {
        ensure!(
            (1..=set.base.rows()).contains(&args.k),
            "--k {} must be between 1 and the {} base vectors",
            args.k,
            set.base.rows()
        );
        let metric = Metric::from(args.metric);
        let gt = compute_ground_truth(metric, &set.base, &set.queries, args.k)?;
        dataset::write_ivecs(path, &gt).context("writing ground truth")?;
        println!("wrote {} (top-{} by {metric})", path.display(), args.k);
    }
    Ok(())
}

fn run_plot(args: PlotArgs) -> Result<()> {
    create_output_dirs([&args.out])?;
    let files = args
        .json
        .iter()
        .map(|path| CurveFile::load(path).map(|f| (path, f)))
        .collect::<Result<Vec<_>>>()?;
    let stem = |p: &Path| {
        p.file_stem().map_or_else(
            || p.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    };
    let labels: Vec<String> = files
        .iter()
        .map(|(path, f)| f.engine.clone().unwrap_or_else(|| stem(path)))
        .collect();
    let curves: Vec<Curve> = files
        .iter()
        .zip(&labels)
        .map(|((path, file), label)| {
            // Two runs of the same engine (say, different M) would get the
            // same legend entry; add the file name to tell them apart.
            let duplicated = labels.iter().filter(|l| *l == label).count() > 1;
            Curve {
                label: if duplicated {
                    format!("{label} ({})", stem(path))
                } else {
                    label.clone()
                },
                points: file.runs.iter().map(|r| (r.recall, r.qps, r.ef)).collect(),
            }
        })
        .collect();

    let first = &files[0].1;
    let title = args
        .title
        .clone()
        .unwrap_or_else(|| match (&first.dataset, &first.metric) {
            (Some(d), Some(m)) => format!("{d} ({m})"),
            (Some(d), None) => d.clone(),
            _ => "recall vs QPS".to_string(),
        });
    let x_label = first
        .k
        .map_or_else(|| "recall".to_string(), |k| format!("recall@{k}"));
    plot_curves(&args.out, &title, &x_label, &curves, args.annotate_ef)
        .with_context(|| format!("plotting to {}", args.out.display()))?;
    println!("wrote {} ({} curves)", args.out.display(), curves.len());
    Ok(())
}

/// Cache sizes, in percent of the keys, that `cache` measures.
const CACHE_SIZES_PCT: [f64; 3] = [0.5, 1.0, 10.0];

fn run_cache(args: CacheArgs) -> Result<()> {
    ensure!(args.keys > 0, "--keys must be at least 1");
    ensure!(args.requests > 0, "--requests must be at least 1");
    create_output_dirs(&args.json)?;
    let traces = TraceKind::standard();
    let bar = progress_bar(
        (traces.len() * CACHE_SIZES_PCT.len() * Policy::ALL.len()) as u64,
        "replay",
    );
    let start = Instant::now();
    let mut runs = Vec::new();
    for (i, kind) in traces.iter().enumerate() {
        let trace = kind.generate(args.keys, args.requests, args.seed + i as u64);
        let jobs: Vec<(f64, Policy)> = CACHE_SIZES_PCT
            .iter()
            .flat_map(|&pct| Policy::ALL.map(|policy| (pct, policy)))
            .collect();
        // Every job replays the trace into its own cache, so they can run on
        // all cores without influencing each other.
        let measured: Vec<CacheRun> = jobs
            .par_iter()
            .map(|&(size_pct, policy)| {
                let entries = cache_entries(args.keys, size_pct);
                let hit_ratio = cache_replay::replay(policy, &trace, entries);
                bar.inc(1);
                CacheRun {
                    trace: kind.to_string(),
                    size_pct,
                    entries,
                    policy: policy.name().to_string(),
                    hit_ratio,
                }
            })
            .collect();
        runs.extend(measured);
    }
    bar.finish_and_clear();
    eprintln!(
        "replayed {} traces of {} requests over {} keys (seed {}) in {:.1} s",
        traces.len(),
        args.requests,
        args.keys,
        args.seed,
        start.elapsed().as_secs_f64()
    );
    let report = CacheReport {
        keys: args.keys,
        requests: args.requests,
        seed: args.seed,
        runs,
    };
    print_cache_report(&report);
    if let Some(path) = &args.json {
        report.write(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Entries in a cache of `size_pct` percent of `keys` keys (at least 1).
fn cache_entries(keys: usize, size_pct: f64) -> u64 {
    ((keys as f64 * size_pct / 100.0).round() as u64).max(1)
}

/// One row per (trace, size) with each policy's hit ratio; the best of the
/// row is starred.
fn print_cache_report(report: &CacheReport) {
    println!();
    println!(
        "hit ratio, {} requests per trace over {} keys, seed {}; * = best of the row",
        report.requests, report.keys, report.seed
    );
    println!();
    print!("{:<9} {:>6} {:>8}", "trace", "size", "entries");
    for policy in Policy::ALL {
        print!("  {:>8}", policy.name());
    }
    println!("  {:>10}", "kyro-moka");
    let mut rows: Vec<(&str, f64)> = Vec::new();
    for run in &report.runs {
        if !rows.contains(&(run.trace.as_str(), run.size_pct)) {
            rows.push((run.trace.as_str(), run.size_pct));
        }
    }
    for (trace, size_pct) in rows {
        let row: Vec<&CacheRun> = report
            .runs
            .iter()
            .filter(|r| r.trace == trace && r.size_pct == size_pct)
            .collect();
        let best = row.iter().map(|r| r.hit_ratio).fold(f64::MIN, f64::max);
        let ratio = |policy: Policy| {
            row.iter()
                .find(|r| r.policy == policy.name())
                .map(|r| r.hit_ratio)
        };
        let entries = row.first().map_or(0, |r| r.entries);
        print!("{trace:<9} {:>5}% {entries:>8}", size_pct);
        for policy in Policy::ALL {
            match ratio(policy) {
                Some(r) => {
                    let star = if r == best { "*" } else { " " };
                    print!("  {r:>7.4}{star}");
                }
                None => print!("  {:>8}", "-"),
            }
        }
        match (ratio(Policy::Kyro), ratio(Policy::Moka)) {
            (Some(k), Some(m)) => println!("  {:>+10.4}", k - m),
            _ => println!(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn ann_source_is_exclusive() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["kyro-bench", "ann"], args].concat());
        assert!(parse(&["--synthetic", "100,4,2"]).is_ok());
        assert!(parse(&["--base", "b.fvecs", "--query", "q.fvecs"]).is_ok());
        assert!(parse(&[]).is_err());
        assert!(parse(&["--base", "b.fvecs"]).is_err());
        assert!(parse(&[
            "--synthetic",
            "100,4,2",
            "--base",
            "b.fvecs",
            "--query",
            "q.fvecs"
        ])
        .is_err());
        assert!(parse(&["--synthetic", "100,4,2", "--gt", "g.ivecs"]).is_err());
        assert!(parse(&["--synthetic", "100,4"]).is_err());
        let Ok(Cli {
            command: Command::Ann(args),
        }) = parse(&["--synthetic", "100,4,2", "--ef", "10,40", "--metric", "l2"])
        else {
            panic!("parse failed");
        };
        assert_eq!(args.ef, vec![10, 40]);
        assert!(matches!(args.metric, MetricArg::L2));
    }

    #[test]
    fn dataset_names() {
        assert_eq!(
            dataset_name(Path::new("/d/sift/sift_base.fvecs")),
            "sift_base"
        );
        assert_eq!(
            dataset_name(Path::new("/d/minilm-50k/base.fvecs")),
            "minilm-50k"
        );
        assert_eq!(dataset_name(Path::new("base.fvecs")), "base");
    }

    #[test]
    fn ground_truth_is_checked_against_the_data() {
        let gt = Matrix::new(3, vec![0, 1, 2, 3, 4, 9]);
        let path = Path::new("g.ivecs");
        assert!(check_ground_truth(&gt, path, 2, 10, 3).is_ok());
        // Id 9 is outside a base set limited to 5 rows.
        let err = check_ground_truth(&gt, path, 2, 5, 3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("query 1") && err.contains("--limit"), "{err}");
        // k=2 only looks at the first two columns, which are fine.
        assert!(check_ground_truth(&gt, path, 2, 5, 2).is_ok());
        assert!(check_ground_truth(&gt, path, 3, 10, 3).is_err());
        assert!(check_ground_truth(&gt, path, 2, 10, 4).is_err());
    }
}
