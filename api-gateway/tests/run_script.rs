//! The README's run command, `scripts/run.sh`, starts the whole stack:
//! kyro-server (both instances) and the gateway, data under one folder, the
//! gateway's service key provisioned once, its bootstrap admin key printed
//! once; Ctrl-C stops both; a second start reuses everything. It runs here
//! on the binaries this test build made (`KYRO_BIN_DIR`), on free ports.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Stack {
    child: Child,
    lines: mpsc::Receiver<String>,
}

struct Ports {
    text: u16,
    image: u16,
    http: u16,
    gateway: u16,
}

fn start(data: &Path, ports: &Ports) -> Stack {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_kyro-gateway"))
        .parent()
        .unwrap();
    let mut child = Command::new("bash")
        .arg(repo.join("scripts/run.sh"))
        .env("KYRO_BIN_DIR", bin_dir)
        .env("KYRO_DATA_DIR", data)
        .env(
            "KYRO__INSTANCES__TEXT__LISTEN",
            format!("127.0.0.1:{}", ports.text),
        )
        .env(
            "KYRO__INSTANCES__IMAGE__LISTEN",
            format!("127.0.0.1:{}", ports.image),
        )
        .env("KYRO__HTTP__LISTEN", format!("127.0.0.1:{}", ports.http))
        .env(
            "KYRO_GATEWAY_LISTEN",
            format!("127.0.0.1:{}", ports.gateway),
        )
        .env(
            "KYRO_GATEWAY__ENGINE__TEXT_URL",
            format!("http://127.0.0.1:{}", ports.text),
        )
        .env(
            "KYRO_GATEWAY__ENGINE__IMAGE_URL",
            format!("http://127.0.0.1:{}", ports.image),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("starting scripts/run.sh");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Stack { child, lines }
}

impl Stack {
    /// Lines until the gateway's `listening: http …` and the `ready` after it.
    fn until_gateway_ready(&self, port: u16) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut seen = Vec::new();
        let mut gateway_listening = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the stack did not become ready; printed {seen:?}"));
            if line == format!("listening: http 127.0.0.1:{port}") {
                gateway_listening = true;
            }
            let done = gateway_listening && line == "ready";
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    /// Ctrl-C (SIGINT to the process group); returns once the script exited.
    fn interrupt(mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            assert!(Instant::now() < deadline, "run.sh did not stop on Ctrl-C");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn get(port: u16, path: &str, key: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let key = key
        .map(|k| format!("X-API-Key: {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{key}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn port_is_closed(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

#[test]
fn run_sh_starts_the_whole_stack_and_ctrl_c_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kyro-data");
    let ports = Ports {
        text: free_port(),
        image: free_port(),
        http: free_port(),
        gateway: free_port(),
    };

    let stack = start(&data, &ports);
    let printed = stack.until_gateway_ready(ports.gateway);
    let admin_key = printed
        .iter()
        .find_map(|l| l.strip_prefix("admin key (shown once, stored hashed): em_live_"))
        .map(|rest| format!("em_live_{rest}"))
        .unwrap_or_else(|| panic!("no gateway admin key printed: {printed:?}"));
    assert!(
        printed.iter().any(|l| l.contains("kyro_sk_")),
        "kyro-server's own admin key is printed on its first start: {printed:?}"
    );
    let (status, body) = get(ports.gateway, "/health/readiness", None);
    assert_eq!(status, 200, "{body}");
    for check in ["database", "engine_text", "engine_image", "model"] {
        assert!(body.contains(&format!("\"{check}\":true")), "{body}");
    }
    let (status, body) = get(ports.gateway, "/api/v1/audit", Some(&admin_key));
    assert_eq!(status, 200, "the printed key is an admin key: {body}");
    assert!(data.join("gateway/gateway.db").exists());
    assert!(data.join("text").is_dir() && data.join("image").is_dir());
    let service_key = std::fs::read_to_string(data.join("gateway/service.key")).unwrap();

    stack.interrupt();
    assert!(port_is_closed(ports.gateway), "the gateway still listens");
    assert!(port_is_closed(ports.text), "kyro-server still listens");

    // A second start: no new keys, the same service key, the same admin key.
    let stack = start(&data, &ports);
    let printed = stack.until_gateway_ready(ports.gateway);
    assert!(
        !printed.iter().any(|l| l.starts_with("admin key")),
        "keys are printed only on the first start: {printed:?}"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("gateway/service.key")).unwrap(),
        service_key
    );
    let (status, _) = get(ports.gateway, "/api/v1/audit", Some(&admin_key));
    assert_eq!(status, 200);
    stack.interrupt();
    assert!(port_is_closed(ports.gateway));
}
