//! Starts the real `kyro-server` binary on ephemeral ports with a temporary
//! data directory, and connects real tonic clients to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kyro_proto::v1 as pb;
use kyro_proto::v1::kyro_client::KyroClient;
use kyro_server::auth::hash_key;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};

pub const TEXT_DIM: usize = 384;
pub const IMAGE_DIM: usize = 512;

/// A key the test configuration knows: name, tenant, scopes, and the key.
pub struct TestKey {
    pub name: &'static str,
    pub tenant: &'static str,
    pub scopes: &'static [&'static str],
    pub key: &'static str,
}

pub const ADMIN: TestKey = TestKey {
    name: "admin",
    tenant: "ops",
    scopes: &["read", "write", "admin"],
    key: "test-admin-key",
};
pub const ALICE: TestKey = TestKey {
    name: "alice",
    tenant: "acme",
    scopes: &["read", "write"],
    key: "test-alice-key",
};
pub const ALICE_READER: TestKey = TestKey {
    name: "alice-ro",
    tenant: "acme",
    scopes: &["read"],
    key: "test-alice-ro-key",
};
pub const BOB: TestKey = TestKey {
    name: "bob",
    tenant: "globex",
    scopes: &["read", "write"],
    key: "test-bob-key",
};
pub const GATEWAY: TestKey = TestKey {
    name: "gateway",
    tenant: "gateway",
    scopes: &["read", "write", "service"],
    key: "test-gateway-key",
};

/// The configuration file the tests start servers with: the five keys above
/// plus `extra` TOML.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let mut text = String::new();
    for key in [ADMIN, ALICE, ALICE_READER, BOB, GATEWAY] {
        let scopes: Vec<String> = key.scopes.iter().map(|s| format!("{s:?}")).collect();
        text.push_str(&format!(
            "[[auth.keys]]\nname = {:?}\ntenant = {:?}\nscopes = [{}]\nsha256 = {:?}\n\n",
            key.name,
            key.tenant,
            scopes.join(", "),
            hash_key(key.key)
        ));
    }
    text.push_str(extra);
    let path = dir.join("kyro.toml");
    std::fs::write(&path, text).expect("writing the test config");
    path
}

/// A running server process.
pub struct TestServer {
    pub child: Child,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub text: SocketAddr,
    pub image: SocketAddr,
    pub http: SocketAddr,
    pub bootstrap_key: Option<String>,
    /// What the server printed on stdout before `ready`.
    pub startup_lines: Vec<String>,
    stdout_lines: mpsc::Receiver<String>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_kyro-server")
}

/// The server binary over `data_dir`, every listener on an ephemeral
/// loopback port.
pub fn server_command(data_dir: &Path) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--listen",
            "text=127.0.0.1:0",
            "--listen",
            "image=127.0.0.1:0",
        ])
        .args(["--http-listen", "127.0.0.1:0"]);
    command
}

impl TestServer {
    /// Starts a server over `data_dir` with `config` and extra flags.
    pub fn start_with(data_dir: &Path, config: Option<&Path>, flags: &[&str]) -> TestServer {
        TestServer::start_logging(data_dir, config, flags, "warn", Stdio::inherit())
    }

    /// [`TestServer::start_with`], logging at `log_level` (a `RUST_LOG`
    /// directive) to `stderr`.
    pub fn start_logging(
        data_dir: &Path,
        config: Option<&Path>,
        flags: &[&str],
        log_level: &str,
        stderr: Stdio,
    ) -> TestServer {
        let mut command = server_command(data_dir);
        command
            .args(flags)
            .env("RUST_LOG", log_level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command.spawn().expect("starting kyro-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = TestServer {
            child,
            data_dir: data_dir.to_owned(),
            config: config.map(Path::to_owned).unwrap_or_default(),
            text: "0.0.0.0:0".parse().unwrap(),
            image: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            bootstrap_key: None,
            startup_lines: Vec::new(),
            stdout_lines: lines,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match server.stdout_lines.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let status = server.child.try_wait().ok().flatten();
                    panic!("kyro-server did not become ready (exit status {status:?})");
                }
            };
            if line == "ready" {
                break;
            }
            server.startup_lines.push(line.clone());
            if let Some(key) = line.strip_prefix("admin key (shown once, stored hashed): ") {
                server.bootstrap_key = Some(key.to_owned());
            }
            if let Some(rest) = line.strip_prefix("listening: ") {
                let parts: Vec<&str> = rest.split_whitespace().collect();
                match parts.as_slice() {
                    // Unix sockets: read by the tests that configure them.
                    [_, "grpc", address] if address.starts_with("unix:") => {}
                    ["text", "grpc", address] => server.text = address.parse().unwrap(),
                    ["image", "grpc", address] => server.image = address.parse().unwrap(),
                    ["http", address] => server.http = address.parse().unwrap(),
                    _ => {}
                }
            }
        }
        server
    }

    /// Starts a server with the test keys configured.
    pub fn start(data_dir: &Path) -> TestServer {
        let config = write_config(data_dir.parent().unwrap_or(data_dir), "");
        TestServer::start_with(data_dir, Some(&config), &[])
    }

    /// A client of the text instance with `key`.
    pub async fn text(&self, key: &TestKey) -> Client {
        connect(self.text, Some(key.key), None).await
    }

    /// A client of the image instance with `key`.
    pub async fn image(&self, key: &TestKey) -> Client {
        connect(self.image, Some(key.key), None).await
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        wait_exit(&mut self.child, Duration::from_secs(60))
    }

    /// SIGKILL: no shutdown path at all.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaping the killed server");
    }

    /// `GET path` on the HTTP listener: (status code, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.http).expect("connecting to the HTTP listener");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("reading the HTTP response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("an HTTP status line");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the server") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "kyro-server did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Adds the API key (and optionally the tenant to act for) to every call.
#[derive(Clone)]
pub struct KeyInterceptor {
    key: Option<AsciiMetadataValue>,
    tenant: Option<AsciiMetadataValue>,
}

impl Interceptor for KeyInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.key {
            request.metadata_mut().insert("authorization", key.clone());
        }
        if let Some(tenant) = &self.tenant {
            request
                .metadata_mut()
                .insert("x-kyro-tenant", tenant.clone());
        }
        Ok(request)
    }
}

/// Builds the interceptor for a key, for clients made outside [`connect`].
pub struct KeyInterceptorFor;

impl KeyInterceptorFor {
    pub fn key(key: &str) -> KeyInterceptor {
        KeyInterceptor {
            key: Some(MetadataValue::try_from(format!("Bearer {key}")).unwrap()),
            tenant: None,
        }
    }
}

pub type Client = KyroClient<InterceptedService<Channel, KeyInterceptor>>;

pub async fn channel(address: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .expect("connecting to kyro-server")
}

/// A channel over the Unix socket at `path` (an instance's `listen_unix`).
pub async fn unix_channel(path: &Path) -> Channel {
    kyro_proto::unix_channel(path)
        .await
        .expect("connecting to kyro-server's Unix socket")
}

/// A client over the Unix socket at `path` sending `key` (none: unauthenticated).
pub async fn connect_unix(path: &Path, key: Option<&str>) -> Client {
    let interceptor = KeyInterceptor {
        key: key.map(|k| MetadataValue::try_from(format!("Bearer {k}")).unwrap()),
        tenant: None,
    };
    KyroClient::with_interceptor(unix_channel(path).await, interceptor)
}

/// A client sending `key` (none: unauthenticated) and acting for `tenant`.
pub async fn connect(address: SocketAddr, key: Option<&str>, tenant: Option<&str>) -> Client {
    let interceptor = KeyInterceptor {
        key: key.map(|k| MetadataValue::try_from(format!("Bearer {k}")).unwrap()),
        tenant: tenant.map(|t| MetadataValue::try_from(t).unwrap()),
    };
    KyroClient::with_interceptor(channel(address).await, interceptor)
        .max_decoding_message_size(64 << 20)
}

/// A deterministic unit-ish vector: `seed` picks it.
pub fn vector(dim: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

pub fn string(value: &str) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::StringValue(value.to_owned())),
    }
}

pub fn integer(value: i64) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::IntegerValue(value)),
    }
}

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

pub fn insert(
    namespace: &str,
    doc_id: u64,
    vector: Vec<f32>,
    payload: &[(&str, pb::Value)],
) -> pb::InsertRequest {
    pb::InsertRequest {
        namespace: namespace.to_owned(),
        doc_id,
        vector,
        payload: payload
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    }
}

pub fn search(namespace: &str, vector: Vec<f32>, k: u32) -> pb::SearchRequest {
    pb::SearchRequest {
        namespace: namespace.to_owned(),
        vector,
        k,
        ..Default::default()
    }
}
