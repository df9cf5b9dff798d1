//! The gRPC connection to kyro-server: the tonic client with the key (and
//! the tenant a service key acts for) on every call.

use std::time::Duration;

use kyro_proto::v1 as pb;
use kyro_proto::v1::kyro_client::KyroClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::error::{error_chain, CliError};

/// Where to connect and as whom (the global flags).
#[derive(Debug, Clone)]
pub struct Connection {
    /// `http://host:port` of one instance.
    pub url: String,
    /// The API key.
    pub key: Option<String>,
    /// The tenant a `service` key acts for (`x-kyro-tenant`).
    pub tenant: Option<String>,
}

/// Adds the key and tenant metadata to every call.
#[derive(Clone)]
pub struct Credentials {
    authorization: Option<AsciiMetadataValue>,
    tenant: Option<AsciiMetadataValue>,
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(value) = &self.tenant {
            request
                .metadata_mut()
                .insert("x-kyro-tenant", value.clone());
        }
        Ok(request)
    }
}

/// The generated client with credentials.
pub type Client = KyroClient<InterceptedService<Channel, Credentials>>;

impl Connection {
    /// Connects (eagerly, so an unreachable server is reported at once).
    pub async fn connect(&self) -> Result<Client, CliError> {
        let credentials = Credentials {
            authorization: self
                .key
                .as_deref()
                .map(|key| {
                    AsciiMetadataValue::try_from(format!("Bearer {key}")).map_err(|_| {
                        CliError::usage("--key: not a valid header value (printable ASCII only)")
                    })
                })
                .transpose()?,
            tenant: self
                .tenant
                .as_deref()
                .map(|tenant| {
                    AsciiMetadataValue::try_from(tenant)
                        .map_err(|_| CliError::usage("--tenant: not a valid header value"))
                })
                .transpose()?,
        };
        let endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|e| CliError::usage(format!("--url {}: {e}", self.url)))?
            .connect_timeout(Duration::from_secs(10));
        let channel = endpoint.connect().await.map_err(|e| CliError::Connect {
            what: "kyro-server",
            url: self.url.clone(),
            reason: error_chain(&e),
        })?;
        Ok(KyroClient::with_interceptor(channel, credentials)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }
}

/// The instance's dimension and metric, from Stats; `None` when the key
/// may not read them.
pub async fn instance_shape(client: &mut Client) -> Result<Option<(usize, String)>, CliError> {
    match client.stats(pb::StatsRequest {}).await {
        Ok(stats) => {
            let stats = stats.into_inner();
            Ok(Some((stats.dim as usize, stats.metric)))
        }
        Err(status) if status.code() == tonic::Code::PermissionDenied => Ok(None),
        Err(status) => Err(CliError::server("Stats", status)),
    }
}
