//! Runs the README's Python walk-through exactly as written: its shell block
//! (virtualenv, `pip install ./clients/python`, which generates the package's
//! gRPC stubs from our proto while it builds, `python quickstart.py`) with its
//! Python block saved as `quickstart.py`, against a freshly started
//! `kyro-server`. Needs `python3` with `venv` and access to PyPI (pip's cache
//! makes later runs quick).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The fenced block that follows `<!-- walkthrough:NAME -->` in the README.
fn readme_block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- walkthrough:{name} -->");
    let after = &readme[readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README lacks {marker}"))
        + marker.len()..];
    let fence_start = after.find("```").expect("a fenced block after the marker");
    let body = &after[fence_start..];
    let body = &body[body.find('\n').expect("a fence line") + 1..];
    let end = body.find("\n```").expect("a closing fence");
    body[..end + 1].to_owned()
}

/// What builds and test runs leave in the client's directory (pip builds in
/// the source tree), not copied.
const GENERATED: [&str; 5] = ["build", "dist", "__pycache__", ".pytest_cache", "_proto"];

/// Copies the Python client's sources into `to`.
fn copy_client(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let file_name = entry.file_name();
        let name = file_name.to_string_lossy();
        if GENERATED.contains(&&*name) || name.ends_with(".egg-info") {
            continue;
        }
        let target = to.join(&file_name);
        if entry.file_type().unwrap().is_dir() {
            copy_client(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn readme_python_walkthrough_runs_as_written() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let shell = readme_block(&readme, "shell");
    let python = readme_block(&readme, "python");

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&dir.path().join("data"), None, &[]);
    let key = server
        .bootstrap_key
        .clone()
        .expect("the first start prints an admin key");

    // The walk-through runs "from the repository root": give it one with the
    // proto tree and a copy of the client (pip builds in the source tree)
    // and nothing else to write over.
    let work = dir.path().join("checkout");
    std::fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::symlink(repo.join("proto"), work.join("proto")).unwrap();
    copy_client(
        &repo.join("clients").join("python"),
        &work.join("clients").join("python"),
    );
    std::fs::write(work.join("quickstart.py"), &python).unwrap();

    let output = Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&shell)
        .current_dir(&work)
        .env("KYRO_API_KEY", &key)
        .env("KYRO_ADDR", server.text.to_string())
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "walk-through failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(last, "1 1.0 cargo", "stdout:\n{stdout}");
}
