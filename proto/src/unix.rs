//! A tonic [`Channel`] over a Unix socket (`instances.<name>.listen_unix`),
//! for clients on the same machine as the server: the benchmarks' load
//! generator, the tests, and later the gateway.

use std::path::{Path, PathBuf};

use tonic::transport::{Channel, Endpoint};

/// Connects a channel to the server's Unix socket at `path`. Every request
/// on it goes to that socket (the channel's URI only names the `:authority`
/// sent, `localhost`).
pub async fn unix_channel(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = path.to_owned();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}
