//! The gateway's view of kyro-server: a gRPC client of the `text` (384-dim)
//! and `image` (512-dim) instances that sends the gateway's `service` key
//! and names the customer in `x-kyro-tenant` on every call, so that the
//! engine itself keeps customers apart.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kyro_proto::v1 as pb;
use kyro_proto::v1::kyro_client::KyroClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use crate::config::EngineSettings;

/// The namespace of text episodes (one per customer, in the text instance).
pub const TEXT_NAMESPACE: &str = "failures";
/// The namespace of screenshot embeddings (in the image instance).
pub const IMAGE_NAMESPACE: &str = "failures_images";
/// Dimension of the text instance.
pub const TEXT_DIM: usize = 384;
/// Dimension of the image instance.
pub const IMAGE_DIM: usize = 512;

/// Which engine instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instance {
    Text,
    Image,
}

impl Instance {
    /// Both instances, text first.
    pub const ALL: [Instance; 2] = [Instance::Text, Instance::Image];

    /// The instance's name (`text`, `image`).
    pub fn label(self) -> &'static str {
        match self {
            Instance::Text => "text",
            Instance::Image => "image",
        }
    }

    /// The episode namespace in this instance.
    pub fn namespace(self) -> &'static str {
        match self {
            Instance::Text => TEXT_NAMESPACE,
            Instance::Image => IMAGE_NAMESPACE,
        }
    }
}

/// A search hit: the episode id and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub episode_id: u64,
    pub similarity: f32,
}

/// The client. Cloning is cheap (tonic channels are handles).
#[derive(Clone)]
pub struct EngineClient {
    text: Channel,
    image: Channel,
    authorization: MetadataValue<tonic::metadata::Ascii>,
    timeout: Duration,
}

impl EngineClient {
    /// Lazily connecting channels: the gateway starts while the engine is
    /// down and calls fail with UNAVAILABLE until it is back.
    pub fn new(settings: &EngineSettings) -> anyhow::Result<EngineClient> {
        let timeout = Duration::from_millis(settings.timeout_ms);
        let channel = |url: &str| -> anyhow::Result<Channel> {
            Ok(Endpoint::from_shared(url.to_owned())?
                .connect_timeout(timeout)
                .timeout(timeout)
                .tcp_nodelay(true)
                .connect_lazy())
        };
        Ok(EngineClient {
            text: channel(&settings.text_url)?,
            image: channel(&settings.image_url)?,
            authorization: MetadataValue::try_from(format!("Bearer {}", settings.service_key))
                .map_err(|_| anyhow::anyhow!("engine.service_key: not a valid header value"))?,
            timeout,
        })
    }

    fn client(&self, instance: Instance) -> KyroClient<Channel> {
        let channel = match instance {
            Instance::Text => self.text.clone(),
            Instance::Image => self.image.clone(),
        };
        KyroClient::new(channel)
    }

    fn request<T>(&self, tenant: &str, message: T) -> Result<Request<T>, Status> {
        let mut request = Request::new(message);
        request.set_timeout(self.timeout);
        let metadata = request.metadata_mut();
        metadata.insert("authorization", self.authorization.clone());
        metadata.insert(
            "x-kyro-tenant",
            MetadataValue::try_from(tenant)
                .map_err(|_| Status::invalid_argument("tenant is not a valid header value"))?,
        );
        Ok(request)
    }

    fn observe<T>(
        instance: Instance,
        rpc: &'static str,
        started: Instant,
        result: &Result<T, Status>,
    ) {
        let code = match result {
            Ok(_) => "ok",
            Err(status) if status.code() == Code::NotFound => "not_found",
            Err(_) => "error",
        };
        metrics::histogram!("gateway_engine_call_seconds", "instance" => instance.label(), "rpc" => rpc)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("gateway_engine_calls_total", "instance" => instance.label(), "rpc" => rpc, "code" => code)
            .increment(1);
    }

    /// Upserts an episode's vector with its filterable payload.
    pub async fn insert(
        &self,
        instance: Instance,
        tenant: &str,
        episode_id: u64,
        vector: Vec<f32>,
        payload: HashMap<String, pb::Value>,
    ) -> Result<(), Status> {
        let started = Instant::now();
        let request = self.request(
            tenant,
            pb::InsertRequest {
                namespace: instance.namespace().to_owned(),
                doc_id: episode_id,
                vector,
                payload,
            },
        )?;
        let result = self.client(instance).insert(request).await.map(|_| ());
        Self::observe(instance, "insert", started, &result);
        result
    }

    /// Deletes episodes; a namespace that does not exist yet holds none.
    pub async fn delete(
        &self,
        instance: Instance,
        tenant: &str,
        ids: Vec<u64>,
    ) -> Result<u64, Status> {
        let started = Instant::now();
        let request = self.request(
            tenant,
            pb::DeleteRequest {
                namespace: instance.namespace().to_owned(),
                doc_ids: ids,
            },
        )?;
        let result = match self.client(instance).delete(request).await {
            Ok(response) => Ok(response.into_inner().deleted),
            Err(status) if status.code() == Code::NotFound => Ok(0),
            Err(status) => Err(status),
        };
        Self::observe(instance, "delete", started, &result);
        result
    }

    /// The `k` nearest episodes at cosine ≥ `min_similarity`, filtered;
    /// none when the customer has no namespace yet.
    pub async fn search(
        &self,
        instance: Instance,
        tenant: &str,
        vector: Vec<f32>,
        k: u32,
        min_similarity: Option<f32>,
        filter: Option<pb::Filter>,
    ) -> Result<Vec<Hit>, Status> {
        let started = Instant::now();
        let request = self.request(
            tenant,
            pb::SearchRequest {
                namespace: instance.namespace().to_owned(),
                vector,
                k,
                ef: 0,
                filter,
                min_score: min_similarity,
                with_vector: false,
                with_payload: Some(false),
            },
        )?;
        let result = match self.client(instance).search(request).await {
            Ok(response) => Ok(response
                .into_inner()
                .hits
                .into_iter()
                .map(|hit| Hit {
                    episode_id: hit.doc_id,
                    similarity: hit.score,
                })
                .collect()),
            Err(status) if status.code() == Code::NotFound => Ok(Vec::new()),
            Err(status) => Err(status),
        };
        Self::observe(instance, "search", started, &result);
        result
    }

    /// The instance's `Stats`, asked as `tenant`. kyro-server answers
    /// instance-wide figures (caches, fsyncs included) when the gateway's
    /// key has the `admin` scope, else the tenant's own namespaces only.
    pub async fn stats(
        &self,
        instance: Instance,
        tenant: &str,
    ) -> Result<pb::StatsResponse, Status> {
        let started = Instant::now();
        let request = self.request(tenant, pb::StatsRequest {})?;
        let result = self
            .client(instance)
            .stats(request)
            .await
            .map(tonic::Response::into_inner);
        Self::observe(instance, "stats", started, &result);
        result
    }

    /// Whether the instance answers (readiness): a gRPC health check.
    pub async fn is_serving(&self, instance: Instance) -> bool {
        let request = match self.request("gateway-health", pb::StatsRequest {}) {
            Ok(request) => request,
            Err(_) => return false,
        };
        self.client(instance).stats(request).await.is_ok()
    }
}

/// A string payload value.
pub fn string(value: &str) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::StringValue(value.to_owned())),
    }
}

/// A string-list payload value.
pub fn strings(values: &[String]) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::StringListValue(pb::StringList {
            values: values.to_vec(),
        })),
    }
}

/// An integer payload value.
pub fn integer(value: i64) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::IntegerValue(value)),
    }
}

/// `key == value` (a string list: contains).
pub fn eq(key: &str, value: &str) -> pb::Filter {
    pb::Filter {
        kind: Some(pb::filter::Kind::Eq(pb::FieldEquals {
            key: key.to_owned(),
            value: Some(pb::Scalar {
                kind: Some(pb::scalar::Kind::StringValue(value.to_owned())),
            }),
        })),
    }
}

/// `key` within [from, to] (either bound optional), integers.
pub fn range(key: &str, from: Option<i64>, to: Option<i64>) -> Option<pb::Filter> {
    if from.is_none() && to.is_none() {
        return None;
    }
    let scalar = |v: i64| pb::Scalar {
        kind: Some(pb::scalar::Kind::IntegerValue(v)),
    };
    Some(pb::Filter {
        kind: Some(pb::filter::Kind::Range(pb::FieldRange {
            key: key.to_owned(),
            gt: None,
            gte: from.map(scalar),
            lt: None,
            lte: to.map(scalar),
        })),
    })
}

/// Every condition; `None` when there are none.
pub fn all_of(mut conditions: Vec<pb::Filter>) -> Option<pb::Filter> {
    match conditions.len() {
        0 => None,
        1 => conditions.pop(),
        _ => Some(pb::Filter {
            kind: Some(pb::filter::Kind::AllOf(pb::FilterList { conditions })),
        }),
    }
}

/// The payload has `key`.
pub fn exists(key: &str) -> pb::Filter {
    pb::Filter {
        kind: Some(pb::filter::Kind::Exists(pb::FieldExists {
            key: key.to_owned(),
        })),
    }
}

/// Not the condition.
pub fn negate(filter: pb::Filter) -> pb::Filter {
    pb::Filter {
        kind: Some(pb::filter::Kind::Negate(Box::new(filter))),
    }
}
