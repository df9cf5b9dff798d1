//! Starts the real `kyro-server` (temp data dir, ephemeral ports, a
//! service key for the gateway) and the real `kyro-gateway` binary over a
//! real SQLite file, and talks HTTP/1.1 to it over plain TCP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The gateway's kyro-server key in these tests.
pub const SERVICE_KEY: &str = "kyro_sk_gateway_test_service_key";

/// The kyro-server binary: `KYRO_SERVER_BIN`, else `kyro-server` in the
/// target directory these tests were built into (`cargo test --workspace`
/// builds it there).
pub fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KYRO_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    // <target>/debug/deps/<test> → <target>/debug/kyro-server
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the target directory");
    dir.join("kyro-server")
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

/// Collects stdout lines until `ready`.
fn until_ready(lines: &mpsc::Receiver<String>, child: &mut Child, what: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(120);
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
pub struct Engine {
    pub child: Child,
    pub dir: PathBuf,
    pub text: SocketAddr,
    pub image: SocketAddr,
    /// `/metrics` and health.
    pub http: SocketAddr,
}

impl Engine {
    /// Starts kyro-server over `dir` (data in `dir/engine`), on the given
    /// addresses (port 0: ephemeral).
    pub fn start_on(dir: &Path, text: &str, image: &str) -> Engine {
        let config = dir.join("kyro.toml");
        std::fs::write(
            &config,
            format!(
                "[[auth.keys]]\nname = \"gateway\"\ntenant = \"gateway\"\nscopes = [\"read\", \"write\", \"service\"]\nsha256 = \"{}\"\n",
                hex::encode(Sha256::digest(SERVICE_KEY.as_bytes()))
            ),
        )
        .expect("writing the engine config");
        let binary = server_binary();
        assert!(
            binary.exists(),
            "kyro-server not found at {} (build it, or set KYRO_SERVER_BIN)",
            binary.display()
        );
        let mut child = Command::new(&binary)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.join("engine"))
            .args(["--listen", &format!("text={text}")])
            .args(["--listen", &format!("image={image}")])
            .args(["--http-listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting kyro-server");
        let lines = read_lines(&mut child);
        let printed = until_ready(&lines, &mut child, "kyro-server");
        let mut engine = Engine {
            child,
            dir: dir.to_owned(),
            text: "0.0.0.0:0".parse().unwrap(),
            image: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
        };
        for line in printed {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["listening:", "text", "grpc", address] => engine.text = address.parse().unwrap(),
                ["listening:", "image", "grpc", address] => engine.image = address.parse().unwrap(),
                ["listening:", "http", address] => engine.http = address.parse().unwrap(),
                _ => {}
            }
        }
        engine
    }

    /// Starts kyro-server on ephemeral ports.
    pub fn start(dir: &Path) -> Engine {
        Engine::start_on(dir, "127.0.0.1:0", "127.0.0.1:0")
    }

    /// SIGTERM and wait.
    pub fn stop(mut self) {
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running gateway.
pub struct Gateway {
    pub child: Child,
    pub address: SocketAddr,
    pub admin_key: String,
    pub data_dir: PathBuf,
    /// Where its stderr (the logs) goes.
    pub log_file: PathBuf,
}

impl Gateway {
    /// Starts the gateway against `engine` with data in `dir/gateway` and
    /// extra `--set key=value` settings.
    pub fn start(dir: &Path, engine: &Engine, settings: &[&str]) -> Gateway {
        let data_dir = dir.join("gateway");
        let log_file = dir.join("gateway.log");
        let log = std::fs::File::create(&log_file).expect("creating the log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kyro-gateway"));
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--engine-text", &format!("http://{}", engine.text)])
            .args(["--engine-image", &format!("http://{}", engine.image)])
            .args(["--set", "engine.timeout_ms=3000"])
            .env("KYRO_GATEWAY_SERVICE_KEY", SERVICE_KEY)
            .env("RUST_LOG", "debug,h2=info,hyper=info,tower=info,tonic=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for setting in settings {
            command.args(["--set", setting]);
        }
        let mut child = command.spawn().expect("starting kyro-gateway");
        let lines = read_lines(&mut child);
        let printed = until_ready(&lines, &mut child, "kyro-gateway");
        let mut admin_key = String::new();
        let mut address: Option<SocketAddr> = None;
        for line in printed {
            if let Some(key) = line.strip_prefix("admin key (shown once, stored hashed): ") {
                admin_key = key.to_owned();
            }
            if let Some(a) = line.strip_prefix("listening: http ") {
                address = Some(a.parse().unwrap());
            }
        }
        assert!(
            admin_key.starts_with("em_live_"),
            "no bootstrap key printed"
        );
        Gateway {
            child,
            address: address.expect("a listening line"),
            admin_key,
            data_dir,
            log_file,
        }
    }

    /// One request: (status, headers as lower-case name → value, body).
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        extra_headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let mut stream = TcpStream::connect(self.address).expect("connecting to the gateway");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some(key) = key {
            head.push_str(&format!("X-API-Key: {key}\r\n"));
        }
        for (name, value) in extra_headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            head.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        if let Some(body) = body {
            // The server may answer (413) and close before reading it all.
            let _ = stream.write_all(body);
        }
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        Response::parse(&bytes)
    }

    /// A JSON request with the key in `X-API-Key`.
    pub fn call(&self, method: &str, path: &str, key: &str, body: Option<&Value>) -> Response {
        let body = body.map(|b| serde_json::to_vec(b).unwrap());
        self.raw(method, path, Some(key), &[], body.as_deref())
    }

    /// Creates a customer and a key with `scopes`; (customer id, key).
    pub fn customer(&self, tier: &str, scopes: &[&str]) -> (String, String) {
        let created = self.call(
            "POST",
            "/api/v1/customers",
            &self.admin_key,
            Some(&serde_json::json!({"name": "test customer", "tier": tier})),
        );
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.json["customer_id"].as_str().unwrap().to_owned();
        let key = self.key(&id, scopes, None);
        (id, key)
    }

    /// A new key of customer `id`.
    pub fn key(&self, id: &str, scopes: &[&str], project: Option<&str>) -> String {
        let mut body = serde_json::json!({"scopes": scopes});
        if let Some(project) = project {
            body["project"] = serde_json::json!(project);
        }
        let key = self.call(
            "POST",
            &format!("/api/v1/customers/{id}/keys"),
            &self.admin_key,
            Some(&body),
        );
        assert_eq!(key.status, 201, "{}", key.text);
        key.json["api_key"].as_str().unwrap().to_owned()
    }

    /// SIGTERM and wait; the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the gateway did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the gateway logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub json: Value,
}

impl Response {
    fn parse(bytes: &[u8]) -> Response {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status line in {text:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let json = serde_json::from_str(&body).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            text: body,
            json,
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// The field an error body names.
    pub fn field(&self) -> &str {
        self.json["error"]["field"].as_str().unwrap_or("")
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A capture body with the given goal and error, valid in every field.
pub fn episode(goal: &str, action: &str, tool: &str, trace: &str) -> Value {
    serde_json::json!({
        "goal": goal,
        "tool_chain": [tool],
        "actions_taken": [action],
        "error_trace": trace,
        "error_class": "dependency_error",
        "environment_info": {"os": "linux", "python": "3.11.4"},
        "preconditions": ["python=3.11.4", "os=linux"],
        "resolution": "pin numpy<2 in requirements.txt",
        "tags": ["python", "build"],
        "severity": 2
    })
}
