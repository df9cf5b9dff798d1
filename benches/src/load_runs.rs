//! `kyro-bench load`: drives the workload of [`kyro_bench::load`] against a
//! `kyro-server` instance over gRPC, or against an engine instance opened in
//! this process (the baseline the gRPC figures are compared with).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::{Args, ValueEnum};
use kyro_bench::dataset::{self, Matrix};
use kyro_bench::groundtruth::exact_knn;
use kyro_bench::h2_client::{unix_socket_path, FramedMessage, H2GrpcClient};
use kyro_bench::load::{
    expand_with_jitter, intended_start, print_report, summarize, LoadReport, Mix, Op, TimedRun,
    WorkerStats,
};
use kyro_bench::stats::mean_recall;
use kyro_engine::storage::{Instance, InstanceConfig, NamespaceRef, PointWrite, SearchRequest};
use kyro_engine::{Metric, Payload};
use kyro_proto::v1 as pb;
use kyro_proto::v1::kyro_client::KyroClient;
use rand::{Rng, SeedableRng};
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Points per insert batch while preloading.
const PRELOAD_BATCH: usize = 1000;

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// gRPC address of a kyro-server instance, e.g. http://127.0.0.1:50051,
    /// or unix:PATH for an instance's `listen_unix` socket.
    #[arg(
        long,
        required_unless_present = "in_process",
        conflicts_with = "in_process"
    )]
    addr: Option<String>,
    /// Instead of a server, open an engine instance in DIR in this process
    /// (same engine defaults as the server) and drive it from threads.
    #[arg(long, value_name = "DIR")]
    in_process: Option<PathBuf>,
    /// In-process only: the tenant owning the namespace. The default is the
    /// tenant of the server's bootstrap admin key, so a data directory the
    /// server filled (`<data_dir>/text`) can be measured in-process as is.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// In-process only: the query-result cache budget in bytes. Default 0:
    /// a load that cycles through a fixed query set would otherwise measure
    /// cache hits; run the server with `instances.<name>.query_cache_bytes=0`
    /// for the same comparison.
    #[arg(long, default_value_t = 0)]
    query_cache_bytes: u64,
    /// API key (admin scope when --preload, which flushes).
    #[arg(long, env = "KYRO_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Namespace to load and query.
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Base vectors (.fvecs): preloaded, and the source of inserted vectors.
    #[arg(long, value_name = "FILE")]
    base: PathBuf,
    /// Query vectors (.fvecs).
    #[arg(long, value_name = "FILE")]
    queries: PathBuf,
    /// Ground truth (.ivecs) of the base as given; computed exactly when
    /// absent or when --points grows the base.
    #[arg(long, value_name = "FILE")]
    gt: Option<PathBuf>,
    /// Grow (by jittered copies) or cut the base to N points.
    #[arg(long, value_name = "N")]
    points: Option<usize>,
    /// Scale of the jitter added to copies.
    #[arg(long, default_value_t = 0.01)]
    jitter: f32,
    /// Insert the base (doc id = row) and flush before the run.
    #[arg(long)]
    preload: bool,
    /// Concurrent workers (gRPC: in-flight requests; in-process: threads).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Seconds of timed load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Target total rate in ops/s (open loop); flat out when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Operation weights, e.g. search=90,insert=5,get=5.
    #[arg(long, default_value = "search=100")]
    mix: String,
    /// Neighbours per search.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Search breadth (default: the instance's).
    #[arg(long)]
    ef: Option<usize>,
    /// gRPC connections the workers share.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// gRPC client of the timed calls: `h2`, the lean client of
    /// `h2_client.rs` (one write per call), or `tonic`'s `Channel` (three).
    /// Preload, flush and the recall pass always use tonic.
    #[arg(long, value_enum, default_value_t = ClientKind::H2)]
    client: ClientKind,
    /// Client runtime threads (gRPC mode). The default, 1, runs the client
    /// on a current-thread runtime: measured on 2 cores it costs the box
    /// about 52 µs of CPU per search against 86 µs with 2 threads, CPU the
    /// server then has for itself.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// gRPC only: send searches N at a time in one BatchSearch call (each
    /// counts as one search, with the call's latency). 1: plain Search.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Skip the recall pass.
    #[arg(long)]
    no_recall: bool,
    /// Write the report as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// Vectors, queries and ground truth of a run.
struct Workload {
    name: String,
    base: Arc<Matrix<f32>>,
    queries: Arc<Matrix<f32>>,
    truth: Option<Matrix<i32>>,
}

fn load_workload(args: &LoadArgs) -> Result<Workload> {
    let mut base = dataset::read_vectors(&args.base, None)
        .with_context(|| format!("reading {}", args.base.display()))?;
    let queries = dataset::read_vectors(&args.queries, None)
        .with_context(|| format!("reading {}", args.queries.display()))?;
    ensure!(
        base.dim() == queries.dim(),
        "base and queries differ in dimension"
    );
    let given_rows = base.rows();
    if let Some(points) = args.points {
        ensure!(points > 0, "--points must be at least 1");
        if points > given_rows {
            base = expand_with_jitter(&base, points, args.jitter, 0x6b79_726f);
        } else {
            base.truncate_rows(points);
        }
    }
    let truth = if args.no_recall {
        None
    } else {
        match &args.gt {
            Some(path) if base.rows() == given_rows => Some(
                dataset::read_ivecs(path, Some(queries.rows()))
                    .with_context(|| format!("reading {}", path.display()))?,
            ),
            _ => {
                eprintln!(
                    "computing exact ground truth ({} × {})…",
                    base.rows(),
                    queries.rows()
                );
                Some(exact_knn(Metric::Cosine, &base, &queries, args.k, &|| {})?)
            }
        }
    };
    Ok(Workload {
        name: args
            .base
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| args.base.display().to_string()),
        base: Arc::new(base),
        queries: Arc::new(queries),
        truth,
    })
}

pub fn run_load(args: LoadArgs) -> Result<()> {
    let mix = Mix::parse(&args.mix).map_err(anyhow::Error::msg)?;
    ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    ensure!(args.duration > 0.0, "--duration must be positive");
    if let Some(rate) = args.rate {
        ensure!(rate > 0.0, "--rate must be positive");
    }
    let workload = load_workload(&args)?;
    let report = match &args.in_process {
        Some(dir) => run_in_process(&args, mix, &workload, dir.clone())?,
        None => {
            // One client thread: a current-thread runtime, so the client's
            // tasks (callers, tonic's buffer, the connection) hand work to
            // each other without cross-thread wake-ups.
            let runtime = if args.client_threads <= 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(args.client_threads)
                    .enable_all()
                    .build()?
            };
            runtime.block_on(run_grpc(&args, mix, &workload))?
        }
    };
    print_report(&report);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// What a run measured, before it becomes a [`LoadReport`].
struct RunOutcome {
    mode: &'static str,
    target: String,
    recall: Option<f64>,
    stats: WorkerStats,
    elapsed: Duration,
}

fn report(args: &LoadArgs, mix: Mix, workload: &Workload, outcome: RunOutcome) -> LoadReport {
    let ops = summarize(&outcome.stats, outcome.elapsed);
    LoadReport {
        mode: outcome.mode.to_owned(),
        target: outcome.target,
        dataset: workload.name.clone(),
        points: workload.base.rows(),
        dim: workload.base.dim(),
        concurrency: args.concurrency,
        target_rate: args.rate,
        duration_secs: outcome.elapsed.as_secs_f64(),
        k: args.k,
        ef: args.ef,
        mix,
        recall: outcome.recall,
        total_ops_per_sec: ops.iter().map(|s| s.ops_per_sec).sum(),
        ops,
        first_error: outcome.stats.first_error.clone(),
        date: kyro_bench::load::today(),
    }
}

// ---------------------------------------------------------------- in-process

fn run_in_process(
    args: &LoadArgs,
    mix: Mix,
    workload: &Workload,
    dir: PathBuf,
) -> Result<LoadReport> {
    let mut config = InstanceConfig::new(workload.base.dim(), Metric::Cosine);
    config.cache.query_cache_bytes = args.query_cache_bytes;
    let instance = Arc::new(
        Instance::open(&dir, config).with_context(|| format!("opening {}", dir.display()))?,
    );
    let target = NamespaceRef::new(&args.tenant, &args.namespace);
    if args.preload {
        let started = Instant::now();
        for start in (0..workload.base.rows()).step_by(PRELOAD_BATCH) {
            let end = (start + PRELOAD_BATCH).min(workload.base.rows());
            let points = (start..end)
                .map(|row| PointWrite {
                    doc_id: row as u64,
                    vector: workload.base.row(row).to_vec(),
                    payload: Payload::new(),
                })
                .collect();
            for outcome in instance.upsert(target, points)? {
                outcome?;
            }
        }
        instance.flush(None)?;
        eprintln!(
            "preloaded {} points in {:.1} s",
            workload.base.rows(),
            started.elapsed().as_secs_f64()
        );
    }
    let search = |query: &[f32]| -> Result<Vec<u64>> {
        let response = instance.search(target, &engine_search_request(args, query))?;
        Ok(response.hits.iter().map(|h| h.doc_id).collect())
    };
    let recall = match &workload.truth {
        Some(truth) => {
            let results = (0..workload.queries.rows())
                .map(|q| search(workload.queries.row(q)))
                .collect::<Result<Vec<_>>>()?;
            Some(mean_recall(&results, truth, args.k))
        }
        None => None,
    };

    let run = TimedRun::start(args.duration);
    let (progress, started, duration) = (run.progress.clone(), run.started, run.duration);
    let workers = args.concurrency;
    let stats: Vec<WorkerStats> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let (instance, progress) = (instance.clone(), progress.clone());
                let base = workload.base.clone();
                let queries = workload.queries.clone();
                scope.spawn(move || {
                    let mut stats = WorkerStats::new();
                    let mut rng = rand::rngs::SmallRng::seed_from_u64(worker as u64);
                    let mut n = 0u64;
                    while started.elapsed() < duration {
                        let begun = match intended_start(started, args.rate, workers, worker, n) {
                            Some(at) if at > Instant::now() => {
                                std::thread::sleep(at - Instant::now());
                                Instant::now()
                            }
                            Some(at) => at,
                            None => Instant::now(),
                        };
                        let op = mix.pick(rng.random_range(0..mix.total()));
                        let outcome = match op {
                            Op::Search => {
                                let q = (worker + n as usize * workers) % queries.rows();
                                let request = engine_search_request(args, queries.row(q));
                                instance.search(target, &request).map(|_| ())
                            }
                            Op::Insert => {
                                let row = rng.random_range(0..base.rows());
                                let point = PointWrite {
                                    doc_id: insert_doc_id(base.rows(), worker, n),
                                    vector: base.row(row).to_vec(),
                                    payload: Payload::new(),
                                };
                                instance.insert(target, point)
                            }
                            Op::Get => {
                                let doc_id = rng.random_range(0..base.rows() as u64);
                                instance.get(target, &[doc_id], false, true).map(|_| ())
                            }
                        };
                        let outcome = outcome.map_err(|e| e.to_string());
                        stats.record_call(&progress, op, 1, begun, outcome);
                        n += 1;
                    }
                    stats
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load worker panicked"))
            .collect()
    });
    let elapsed = run.finish();
    let mut merged = WorkerStats::new();
    for s in &stats {
        merged.merge(s);
    }
    let outcome = RunOutcome {
        mode: "in-process",
        target: dir.display().to_string(),
        recall,
        stats: merged,
        elapsed,
    };
    Ok(report(args, mix, workload, outcome))
}

/// Doc ids for inserted points: above the preloaded rows, disjoint per worker.
fn insert_doc_id(rows: usize, worker: usize, n: u64) -> u64 {
    rows as u64 + ((worker as u64) << 40) + n
}

// ---------------------------------------------------------------- gRPC

#[derive(Clone)]
struct KeyInterceptor(Option<AsciiMetadataValue>);

impl tonic::service::Interceptor for KeyInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(key) = &self.0 {
            request.metadata_mut().insert("authorization", key.clone());
        }
        Ok(request)
    }
}

type Client = KyroClient<InterceptedService<Channel, KeyInterceptor>>;

/// Which gRPC client makes the timed calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ClientKind {
    H2,
    Tonic,
}

/// The `authorization` value for `--key`.
fn bearer(args: &LoadArgs) -> Option<String> {
    args.key.as_ref().map(|key| format!("Bearer {key}"))
}

async fn clients(args: &LoadArgs, address: &str) -> Result<Vec<Client>> {
    let key = bearer(args)
        .map(AsciiMetadataValue::try_from)
        .transpose()
        .context("--key: must be ASCII")?;
    let mut clients = Vec::new();
    for _ in 0..args.connections.max(1) {
        let channel = connect_channel(address)
            .await
            .with_context(|| format!("connecting to {address}"))?;
        clients.push(
            KyroClient::with_interceptor(channel, KeyInterceptor(key.clone()))
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        );
    }
    Ok(clients)
}

/// A tonic channel to `address`: `http://host:port`, or `unix:PATH`.
async fn connect_channel(address: &str) -> Result<Channel> {
    let Some(path) = unix_socket_path(address) else {
        return Ok(Channel::from_shared(address.to_owned())
            .context("--addr: not a URI")?
            .connect()
            .await?);
    };
    Ok(kyro_proto::unix_channel(Path::new(path)).await?)
}

/// A client of the timed loop: the calls it makes, over either client.
#[derive(Clone)]
enum LoadClient {
    Tonic(Client),
    H2(H2GrpcClient),
}

impl LoadClient {
    async fn connect_all(
        args: &LoadArgs,
        address: &str,
        tonic_clients: &[Client],
    ) -> Result<Vec<LoadClient>> {
        match args.client {
            ClientKind::Tonic => Ok(tonic_clients
                .iter()
                .cloned()
                .map(LoadClient::Tonic)
                .collect()),
            ClientKind::H2 => {
                let key = bearer(args)
                    .map(http::HeaderValue::try_from)
                    .transpose()
                    .context("--key: not a valid header value")?;
                let mut clients = Vec::new();
                for _ in 0..args.connections.max(1) {
                    let client = H2GrpcClient::connect(address, key.clone())
                        .await
                        .with_context(|| format!("connecting to {address}"))?;
                    clients.push(LoadClient::H2(client));
                }
                Ok(clients)
            }
        }
    }

    /// Searches for query `q` of `searches`.
    async fn search(&mut self, searches: &PreparedSearches, q: usize) -> Result<(), String> {
        match self {
            LoadClient::Tonic(c) => c
                .search(searches.requests[q].clone())
                .await
                .map(drop)
                .map_err(status_text),
            LoadClient::H2(c) => c
                .unary_framed::<pb::SearchResponse>(
                    "/kyro.v1.Kyro/Search",
                    searches.framed[q].clone(),
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    async fn batch_search(&mut self, request: pb::BatchSearchRequest) -> Result<(), String> {
        match self {
            LoadClient::Tonic(c) => c.batch_search(request).await.map(drop).map_err(status_text),
            LoadClient::H2(c) => c
                .unary::<_, pb::BatchSearchResponse>("/kyro.v1.Kyro/BatchSearch", &request)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    async fn insert(&mut self, request: pb::InsertRequest) -> Result<(), String> {
        match self {
            LoadClient::Tonic(c) => c.insert(request).await.map(drop).map_err(status_text),
            LoadClient::H2(c) => c
                .unary::<_, pb::InsertResponse>("/kyro.v1.Kyro/Insert", &request)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    async fn get(&mut self, request: pb::GetRequest) -> Result<(), String> {
        match self {
            LoadClient::Tonic(c) => c.get(request).await.map(drop).map_err(status_text),
            LoadClient::H2(c) => c
                .unary::<_, pb::GetResponse>("/kyro.v1.Kyro/Get", &request)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }
}

fn status_text(status: tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

/// The engine search every in-process search sends.
fn engine_search_request<'a>(args: &LoadArgs, query: &'a [f32]) -> SearchRequest<'a> {
    let mut request = SearchRequest::new(query, args.k);
    request.ef = args.ef;
    request.with_payload = false;
    request
}

/// Every query's `SearchRequest`, built before the timed loop, and framed
/// for the h2 client too: the load generator shares the server's cores, so
/// encoding the same 1,000 requests again on every call (and copying their
/// vectors) would be measured as server time lost. Tonic's client encodes
/// its messages itself, as any tonic application does.
struct PreparedSearches {
    requests: Vec<pb::SearchRequest>,
    framed: Vec<FramedMessage>,
}

impl PreparedSearches {
    fn new(args: &LoadArgs, queries: &Matrix<f32>) -> PreparedSearches {
        let requests: Vec<pb::SearchRequest> = (0..queries.rows())
            .map(|q| search_request(args, queries.row(q).to_vec()))
            .collect();
        let framed = match args.client {
            ClientKind::H2 => requests.iter().map(FramedMessage::new).collect(),
            ClientKind::Tonic => Vec::new(),
        };
        PreparedSearches { requests, framed }
    }

    fn len(&self) -> usize {
        self.requests.len()
    }
}

/// The wire search for `vector`.
fn search_request(args: &LoadArgs, vector: Vec<f32>) -> pb::SearchRequest {
    pb::SearchRequest {
        namespace: args.namespace.clone(),
        vector,
        k: args.k as u32,
        ef: args.ef.unwrap_or(0) as u32,
        with_payload: Some(false),
        ..Default::default()
    }
}

async fn run_grpc(args: &LoadArgs, mix: Mix, workload: &Workload) -> Result<LoadReport> {
    let address = args.addr.clone().unwrap_or_default();
    let clients = clients(args, &address).await?;
    let mut first = clients[0].clone();
    if args.preload {
        let started = Instant::now();
        let base = workload.base.clone();
        let namespace = args.namespace.clone();
        let messages = (0..base.rows()).step_by(PRELOAD_BATCH).map(move |start| {
            let end = (start + PRELOAD_BATCH).min(base.rows());
            pb::BulkInsertRequest {
                namespace: namespace.clone(),
                points: (start..end)
                    .map(|row| pb::Point {
                        doc_id: row as u64,
                        vector: base.row(row).to_vec(),
                        payload: Default::default(),
                    })
                    .collect(),
            }
        });
        let reply = first
            .bulk_insert(tokio_stream::iter(messages))
            .await?
            .into_inner();
        if reply.failed > 0 {
            bail!(
                "preload: {} points refused, first: {:?}",
                reply.failed,
                reply.errors.first()
            );
        }
        first
            .flush(pb::FlushRequest::default())
            .await
            .context("preload: Flush (needs an admin key)")?;
        eprintln!(
            "preloaded {} points in {:.1} s",
            reply.inserted,
            started.elapsed().as_secs_f64()
        );
    }
    let searches = Arc::new(PreparedSearches::new(args, &workload.queries));
    let recall = match &workload.truth {
        Some(truth) => {
            let mut results = Vec::with_capacity(searches.len());
            for request in &searches.requests {
                let reply = first.search(request.clone()).await?.into_inner();
                results.push(reply.hits.iter().map(|h| h.doc_id).collect());
            }
            Some(mean_recall(&results, truth, args.k))
        }
        None => None,
    };

    let load_clients = LoadClient::connect_all(args, &address, &clients).await?;
    let run = TimedRun::start(args.duration);
    let (progress, started, duration) = (run.progress.clone(), run.started, run.duration);
    let workers = args.concurrency;
    let mut tasks = Vec::with_capacity(workers);
    for worker in 0..workers {
        let mut client = load_clients[worker % load_clients.len()].clone();
        let progress = progress.clone();
        let base = workload.base.clone();
        let searches = searches.clone();
        let (namespace, rate) = (args.namespace.clone(), args.rate);
        let batch = args.batch.max(1);
        tasks.push(tokio::spawn(async move {
            let mut stats = WorkerStats::new();
            let mut rng = rand::rngs::SmallRng::seed_from_u64(worker as u64);
            let mut n = 0u64;
            while started.elapsed() < duration {
                let begun = match intended_start(started, rate, workers, worker, n) {
                    Some(at) if at > Instant::now() => {
                        tokio::time::sleep_until(at.into()).await;
                        Instant::now()
                    }
                    Some(at) => at,
                    None => Instant::now(),
                };
                let op = mix.pick(rng.random_range(0..mix.total()));
                let outcome = match op {
                    Op::Search => {
                        let query = |i: usize| {
                            (worker + (n as usize * batch + i) * workers) % searches.len()
                        };
                        if batch > 1 {
                            let request = pb::BatchSearchRequest {
                                searches: (0..batch)
                                    .map(|i| searches.requests[query(i)].clone())
                                    .collect(),
                            };
                            client.batch_search(request).await
                        } else {
                            client.search(&searches, query(0)).await
                        }
                    }
                    Op::Insert => {
                        let row = rng.random_range(0..base.rows());
                        let request = pb::InsertRequest {
                            namespace: namespace.clone(),
                            doc_id: insert_doc_id(base.rows(), worker, n),
                            vector: base.row(row).to_vec(),
                            payload: Default::default(),
                        };
                        client.insert(request).await
                    }
                    Op::Get => {
                        let request = pb::GetRequest {
                            namespace: namespace.clone(),
                            doc_id: rng.random_range(0..base.rows() as u64),
                            with_vector: false,
                            with_payload: Some(true),
                        };
                        client.get(request).await
                    }
                };
                // A batch counts as `batch` searches, each with the call's latency.
                let searches = if op == Op::Search { batch } else { 1 };
                stats.record_call(&progress, op, searches, begun, outcome);
                n += 1;
            }
            stats
        }));
    }
    let mut merged = WorkerStats::new();
    for task in tasks {
        merged.merge(&task.await.context("a load worker failed")?);
    }
    let elapsed = run.finish();
    let outcome = RunOutcome {
        mode: "grpc",
        target: address,
        recall,
        stats: merged,
        elapsed,
    };
    Ok(report(args, mix, workload, outcome))
}
