//! Starts the real `kyro-server` (and, for the gateway tests, the real
//! `kyro-gateway`) in a temporary directory, runs the real `kyro` binary
//! against them, and reads the server back with a tonic client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use kyro_cli::client::{Client, Connection};
use kyro_proto::v1 as pb;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// The test instance's dimension: `text` runs 16-dim under L2, which
/// stores vectors as sent, so they can be compared bit for bit.
pub const DIM: usize = 16;

/// A key the test server knows.
pub struct TestKey {
    pub name: &'static str,
    pub tenant: &'static str,
    pub scopes: &'static [&'static str],
    pub key: &'static str,
}

pub const ADMIN: TestKey = TestKey {
    name: "admin",
    tenant: "acme",
    scopes: &["read", "write", "admin"],
    key: "cli-test-admin-key",
};
pub const WRITER: TestKey = TestKey {
    name: "writer",
    tenant: "acme",
    scopes: &["read", "write"],
    key: "cli-test-writer-key",
};
pub const READER: TestKey = TestKey {
    name: "reader",
    tenant: "acme",
    scopes: &["read"],
    key: "cli-test-reader-key",
};
/// The gateway's service key.
pub const SERVICE: TestKey = TestKey {
    name: "gateway",
    tenant: "gateway",
    scopes: &["read", "write", "service"],
    key: "cli-test-gateway-service-key",
};

/// A binary in the target directory of these tests (`<target>/debug`),
/// unless the environment variable names it.
fn binary(env: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // <target>/debug/deps/<test> → <target>/debug/<name>
    exe.parent()
        .and_then(Path::parent)
        .expect("the target directory")
        .join(name)
}

/// kyro-server: `KYRO_SERVER_BIN`, else beside the tests.
pub fn server_binary() -> PathBuf {
    binary("KYRO_SERVER_BIN", "kyro-server")
}

/// kyro-gateway: `KYRO_GATEWAY_BIN`, else beside the tests.
pub fn gateway_binary() -> PathBuf {
    binary("KYRO_GATEWAY_BIN", "kyro-gateway")
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn read_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn until_ready(lines: &mpsc::Receiver<String>, child: &mut Child, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line == "ready" => return seen,
            Ok(line) => seen.push(line),
            Err(_) => {
                let status = child.try_wait().ok().flatten();
                panic!("{what} did not become ready (exit status {status:?}); printed {seen:?}");
            }
        }
    }
}

/// A running kyro-server.
pub struct Server {
    pub child: Child,
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    pub text: SocketAddr,
    pub image: SocketAddr,
    /// Whether `text` is the 384-dim cosine default (for the gateway).
    pub default_dims: bool,
}

impl Server {
    /// Starts a server in `root` (data in `root/data`) whose `text`
    /// instance is 16-dim L2, on ephemeral ports.
    pub fn start(root: &Path) -> Server {
        Server::start_on(root, "127.0.0.1:0", false)
    }

    /// Starts a server with the default instances (text 384-dim cosine).
    pub fn start_default(root: &Path) -> Server {
        Server::start_on(root, "127.0.0.1:0", true)
    }

    fn start_on(root: &Path, text: &str, default_dims: bool) -> Server {
        let config = root.join("kyro.toml");
        let mut toml = String::new();
        for key in [ADMIN, WRITER, READER, SERVICE] {
            let scopes: Vec<String> = key.scopes.iter().map(|s| format!("{s:?}")).collect();
            toml.push_str(&format!(
                "[[auth.keys]]\nname = {:?}\ntenant = {:?}\nscopes = [{}]\nsha256 = {:?}\n\n",
                key.name,
                key.tenant,
                scopes.join(", "),
                hash(key.key)
            ));
        }
        if !default_dims {
            // Small segments, so exports read cold segments and the hot tier.
            toml.push_str(&format!(
                "[instances.text]\ndim = {DIM}\nmetric = \"l2\"\nhot_max_points = 1000\n"
            ));
        }
        std::fs::write(&config, toml).expect("writing the server config");
        let binary = server_binary();
        assert!(
            binary.exists(),
            "kyro-server not found at {} (build it, or set KYRO_SERVER_BIN)",
            binary.display()
        );
        let data_dir = root.join("data");
        let mut child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", &format!("text={text}")])
            .args(["--listen", "image=127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting kyro-server");
        let lines = read_lines(&mut child);
        let printed = until_ready(&lines, &mut child, "kyro-server");
        let address = |instance: &str| -> SocketAddr {
            printed
                .iter()
                .find_map(|line| {
                    let parts: Vec<&str> = line.split_whitespace().collect();
                    match parts.as_slice() {
                        ["listening:", name, "grpc", address] if *name == instance => {
                            address.parse().ok()
                        }
                        _ => None,
                    }
                })
                .unwrap_or_else(|| panic!("no `listening: {instance} grpc` line in {printed:?}"))
        };
        let (text, image) = (address("text"), address("image"));
        Server {
            child,
            root: root.to_owned(),
            data_dir,
            config,
            text,
            image,
            default_dims,
        }
    }

    /// The URL `kyro --url` takes.
    pub fn url(&self) -> String {
        format!("http://{}", self.text)
    }

    /// SIGKILL (no shutdown at all) and wait.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the graceful stop.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
    }

    /// Starts the server again over the same data, on the same text port.
    pub fn restart(&mut self) {
        let address = self.text.to_string();
        let next = Server::start_on(&self.root, &address, self.default_dims);
        let old = std::mem::replace(self, next);
        // The old process is already gone; dropping it only reaps it.
        drop(old);
    }

    /// A tonic client with `key`.
    pub async fn client(&self, key: &TestKey) -> Client {
        Connection {
            url: self.url(),
            key: Some(key.key.to_owned()),
            tenant: None,
        }
        .connect()
        .await
        .expect("connecting to kyro-server")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a `kyro` run did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts success and parses stdout as JSON.
    pub fn json(&self) -> Json {
        assert_eq!(self.code, 0, "kyro failed: {}{}", self.stdout, self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Asserts success.
    pub fn ok(&self) -> &Run {
        assert_eq!(self.code, 0, "kyro failed: {}{}", self.stdout, self.stderr);
        self
    }
}

/// The `kyro` command with `--url` and `--key` set, and the environment
/// variables it reads cleared.
pub fn kyro_command(server: &Server, key: &TestKey) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kyro"));
    for var in [
        "KYRO_URL",
        "KYRO_API_KEY",
        "KYRO_TENANT",
        "KYRO_GATEWAY_URL",
        "KYRO_GATEWAY_KEY",
        "KYRO_DATA_DIR",
    ] {
        command.env_remove(var);
    }
    command
        .args(["--url", &server.url(), "--key", key.key])
        .stdin(Stdio::null());
    command
}

/// Runs `kyro` with `args` to the end.
pub fn kyro(server: &Server, key: &TestKey, args: &[&str]) -> Run {
    Run::from(
        kyro_command(server, key)
            .args(args)
            .output()
            .expect("running kyro"),
    )
}

/// A point of the test data: every payload kind, some points without one.
pub fn point(id: u64) -> pb::Point {
    use pb::value::Kind;
    let vector = (0..DIM)
        .map(|i| ((id as f32) * 0.37 + i as f32 * 1.13).sin() * 10.0 + id as f32 * 1e-3)
        .collect();
    let mut payload = std::collections::HashMap::new();
    if !id.is_multiple_of(7) {
        let mut put = |key: &str, kind: Kind| {
            payload.insert(key.to_owned(), pb::Value { kind: Some(kind) });
        };
        put(
            "tool",
            Kind::StringValue(["cargo", "npm", "pip"][id as usize % 3].into()),
        );
        put("exit_code", Kind::IntegerValue(id as i64 - 1000));
        put("ratio", Kind::FloatValue(id as f64 / 3.0));
        put("whole", Kind::FloatValue(2.0));
        put("ok", Kind::BoolValue(id.is_multiple_of(2)));
        put(
            "tags",
            Kind::StringListValue(pb::StringList {
                values: vec![format!("t{}", id % 5), "ünïcode \"quoted\"".into()],
            }),
        );
        if id.is_multiple_of(11) {
            put(
                "empty_tags",
                Kind::StringListValue(pb::StringList { values: vec![] }),
            );
        }
    }
    pb::Point {
        doc_id: id,
        vector,
        payload,
    }
}

/// Inserts `points` into `namespace` with BulkInsert.
pub async fn insert(client: &mut Client, namespace: &str, points: Vec<pb::Point>) {
    let messages: Vec<pb::BulkInsertRequest> = points
        .chunks(1000)
        .map(|chunk| pb::BulkInsertRequest {
            namespace: namespace.to_owned(),
            points: chunk.to_vec(),
        })
        .collect();
    let response = client
        .bulk_insert(tokio_stream::iter(messages))
        .await
        .expect("BulkInsert")
        .into_inner();
    assert_eq!(response.failed, 0, "{:?}", response.errors);
}

/// Every point of a namespace, by doc id (with vectors and payloads).
pub async fn read_all(client: &mut Client, namespace: &str) -> BTreeMap<u64, pb::PointRecord> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = client
            .scroll(pb::ScrollRequest {
                namespace: namespace.to_owned(),
                filter: None,
                after_doc_id: after,
                limit: 10_000,
                with_vector: true,
                with_payload: Some(true),
            })
            .await
            .expect("Scroll")
            .into_inner();
        for point in page.points {
            assert!(out.insert(point.doc_id, point).is_none(), "a doc id twice");
        }
        match page.next_after_doc_id {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// Points of a namespace; 0 when it does not exist.
pub async fn count(client: &mut Client, namespace: &str) -> u64 {
    match client
        .count(pb::CountRequest {
            namespace: namespace.to_owned(),
            filter: None,
        })
        .await
    {
        Ok(response) => response.into_inner().count,
        Err(status) if status.code() == tonic::Code::NotFound => 0,
        Err(status) => panic!("Count: {status}"),
    }
}

/// Drops a namespace, asserting it existed.
pub async fn drop_namespace(client: &mut Client, namespace: &str) {
    let dropped = client
        .drop_namespace(pb::DropNamespaceRequest {
            namespace: namespace.to_owned(),
            tenant: String::new(),
        })
        .await
        .expect("DropNamespace")
        .into_inner()
        .dropped;
    assert!(dropped, "{namespace} did not exist");
}

/// Asserts that two namespace contents are equal bit for bit.
pub fn assert_same_points(
    left: &BTreeMap<u64, pb::PointRecord>,
    right: &BTreeMap<u64, pb::PointRecord>,
    what: &str,
) {
    assert_eq!(
        left.keys().collect::<Vec<_>>(),
        right.keys().collect::<Vec<_>>(),
        "{what}: the doc ids differ"
    );
    for (id, a) in left {
        let b = &right[id];
        assert_eq!(a.payload, b.payload, "{what}: doc {id}'s payload");
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&a.vector),
            bits(&b.vector),
            "{what}: doc {id}'s vector"
        );
    }
}

/// A running gateway over `server` (text 384-dim), with its admin key.
pub struct Gateway {
    pub child: Child,
    pub address: SocketAddr,
    pub admin_key: String,
}

impl Gateway {
    /// Starts `kyro-gateway` with data in `root/gateway`.
    pub fn start(root: &Path, server: &Server) -> Gateway {
        let binary = gateway_binary();
        assert!(
            binary.exists(),
            "kyro-gateway not found at {} (build it, or set KYRO_GATEWAY_BIN)",
            binary.display()
        );
        let mut child = Command::new(&binary)
            .arg("--data-dir")
            .arg(root.join("gateway"))
            .args(["--listen", "127.0.0.1:0"])
            .args(["--engine-text", &server.url()])
            .args(["--engine-image", &format!("http://{}", server.image)])
            .env("KYRO_GATEWAY_SERVICE_KEY", SERVICE.key)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting kyro-gateway");
        let lines = read_lines(&mut child);
        let printed = until_ready(&lines, &mut child, "kyro-gateway");
        let mut admin_key = String::new();
        let mut address = None;
        for line in printed {
            if let Some(key) = line.strip_prefix("admin key (shown once, stored hashed): ") {
                admin_key = key.to_owned();
            }
            if let Some(a) = line.strip_prefix("listening: http ") {
                address = a.parse().ok();
            }
        }
        assert!(
            admin_key.starts_with("em_live_"),
            "no bootstrap key printed"
        );
        Gateway {
            child,
            address: address.expect("a `listening: http` line"),
            admin_key,
        }
    }

    /// `http://address`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A JSON request with `key`: (status, body).
    pub fn call(&self, method: &str, path: &str, key: &str, body: Option<&Json>) -> (u16, Json) {
        let mut stream = TcpStream::connect(self.address).expect("connecting to the gateway");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-API-Key: {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        // Small answers here are sent with a length, not chunked.
        (status, serde_json::from_str(body).unwrap_or(Json::Null))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
