//! Runs the README's REST walk-through (`<!-- walkthrough:rest -->`)
//! exactly as written, with bash and curl, against a freshly started
//! kyro-server and gateway.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Engine, Gateway};

/// The fenced block that follows `<!-- walkthrough:NAME -->` in the README.
fn readme_block(readme: &str, name: &str) -> String {
    let marker = format!("<!-- walkthrough:{name} -->");
    let start = readme
        .find(&marker)
        .unwrap_or_else(|| panic!("README lacks {marker}"));
    let after = &readme[start + marker.len()..];
    let body = &after[after.find("```").expect("a fenced block")..];
    let body = &body[body.find('\n').expect("a fence line") + 1..];
    let end = body.find("\n```").expect("a closing fence");
    body[..end + 1].to_owned()
}

#[test]
fn readme_rest_walkthrough_runs_as_written() {
    if !api_gateway::embed::BUILT_IN {
        eprintln!("skipped: this gateway is built without an embedder");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let script = readme_block(&readme, "rest");
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("KYRO_GATEWAY_URL", format!("http://{}", gw.address))
        .env("KYRO_ADMIN_KEY", &gw.admin_key)
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let (search, reflect, fix) = (&lines[0], &lines[1], &lines[2]);
    assert_eq!(search["results"][0]["episode_id"], 1, "{search}");
    assert!(search["results"][0]["explanation"].as_str().is_some());
    assert_eq!(reflect["decision"], "block", "{reflect}");
    assert!(reflect["suggested_action"]
        .as_str()
        .unwrap()
        .contains("numpy>=1.26"));
    assert_eq!(fix["fix_successes"], 1, "{fix}");
}
