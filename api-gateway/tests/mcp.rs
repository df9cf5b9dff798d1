//! The MCP tools through real client sessions against the real kyro-server,
//! gateway, SQLite file and model: rmcp's client over stdio (it launches
//! `kyro-gateway mcp-stdio` as a process), a JSON-RPC session over the
//! streamable HTTP endpoint `/mcp`, and the official Python SDK (`mcp` from
//! PyPI) over both transports.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Engine, Gateway};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

const TOOLS: [&str; 6] = [
    "record_failure",
    "search_failures",
    "check_action",
    "record_outcome",
    "get_episode",
    "forget_episode",
];

fn failure() -> Value {
    json!({
        "goal": "install numpy in a fresh python 3.12 virtualenv",
        "tool_chain": ["pip", "python"],
        "actions_taken": ["pip install numpy==1.24.0"],
        "error_trace": "error: subprocess-exited-with-error: Building wheel for numpy (pyproject.toml) did not run successfully; ModuleNotFoundError: No module named 'distutils'",
        "error_class": "dependency_error",
        "preconditions": {"python": "3.12.1"},
        "resolution": "use numpy>=1.26, the first release that supports python 3.12",
        "tags": ["python", "numpy"],
    })
}

fn arguments(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("arguments must be an object, got {other}"),
    }
}

async fn call(client: &RunningService<RoleClient, ()>, tool: &str, args: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments(args)))
        .await
        .unwrap_or_else(|e| panic!("calling {tool}: {e}"))
}

fn structured(result: &CallToolResult) -> &Value {
    result
        .structured_content
        .as_ref()
        .expect("tools answer structured content")
}

fn is_error(result: &CallToolResult) -> bool {
    result.is_error.unwrap_or(false)
}

async fn stdio_client(gateway: &Gateway, key: &str) -> RunningService<RoleClient, ()> {
    let url = format!("http://{}", gateway.address);
    let key = key.to_owned();
    let transport = TokioChildProcess::new(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kyro-gateway")).configure(|command| {
            command.args(["mcp-stdio", "--url", &url, "--key", &key]);
        }),
    )
    .expect("launching kyro-gateway mcp-stdio");
    ().serve(transport)
        .await
        .expect("an MCP session over stdio")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_over_stdio_calls_every_tool() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gateway = Gateway::start(dir.path(), &engine, &[]);
    let (_, key) = gateway.customer("PRO", &["read", "write"]);

    let client = stdio_client(&gateway, &key).await;
    let info = client.peer_info().expect("the server introduced itself");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("kyrodb")
    );
    let tools = client.list_all_tools().await.expect("tools/list");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    let mut expected = TOOLS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected);
    for tool in &tools {
        assert!(
            tool.description.as_ref().is_some_and(|d| d.len() > 60),
            "{} needs a description a model can act on",
            tool.name
        );
    }
    let record = tools.iter().find(|t| t.name == "record_failure").unwrap();
    let required = record
        .input_schema
        .get("required")
        .expect("required fields");
    for field in [
        "goal",
        "tool_chain",
        "actions_taken",
        "error_trace",
        "error_class",
    ] {
        assert!(
            required.as_array().unwrap().iter().any(|f| f == field),
            "record_failure does not require {field}"
        );
    }

    // record_failure → get_episode → check_action blocks the repeat →
    // search_failures finds it → record_outcome → forget_episode.
    let recorded = call(&client, "record_failure", failure()).await;
    assert!(!is_error(&recorded), "{recorded:?}");
    let id = structured(&recorded)["episode_id"]
        .as_u64()
        .expect("an episode id");

    let got = call(&client, "get_episode", json!({"episode_id": id})).await;
    assert!(!is_error(&got), "{got:?}");
    assert_eq!(structured(&got)["goal"], failure()["goal"]);

    let check = call(
        &client,
        "check_action",
        json!({
            "goal": "install numpy in a fresh python 3.12 virtualenv",
            "proposed_action": "pip install numpy==1.24.0",
            "tool": "pip",
            "current_state": {"python": "3.12.1"},
        }),
    )
    .await;
    assert!(!is_error(&check), "{check:?}");
    let verdict = structured(&check);
    assert_eq!(verdict["decision"], "block", "{verdict}");
    assert_eq!(verdict["matched_episodes"][0]["episode_id"], id);
    assert!(verdict["suggested_action"]
        .as_str()
        .is_some_and(|s| s.contains("numpy>=1.26")));

    let unrelated = call(
        &client,
        "check_action",
        json!({
            "goal": "rename a git branch",
            "proposed_action": "git branch -m old new",
            "tool": "git",
        }),
    )
    .await;
    assert_eq!(structured(&unrelated)["decision"], "proceed");

    let found = call(
        &client,
        "search_failures",
        json!({"query": "numpy will not build on python 3.12", "k": 3}),
    )
    .await;
    assert!(!is_error(&found), "{found:?}");
    assert_eq!(structured(&found)["results"][0]["episode_id"], id);
    assert!(structured(&found)["results"][0]["components"]["similarity"].is_number());

    let outcome = call(
        &client,
        "record_outcome",
        json!({"episode_id": id, "outcome": "success", "applied_suggestion": "numpy>=1.26"}),
    )
    .await;
    assert!(!is_error(&outcome), "{outcome:?}");
    assert_eq!(structured(&outcome)["fix_successes"], 1);

    let forgotten = call(&client, "forget_episode", json!({"episode_id": id})).await;
    assert!(!is_error(&forgotten), "{forgotten:?}");
    let gone = call(&client, "get_episode", json!({"episode_id": id})).await;
    assert!(is_error(&gone));
    assert_eq!(structured(&gone)["error"]["code"], "not_found");

    // A model can act on the errors: the field at fault is named.
    let mut short = failure();
    short["goal"] = json!("numpy");
    let refused = call(&client, "record_failure", short).await;
    assert!(is_error(&refused));
    assert_eq!(structured(&refused)["error"]["code"], "validation_error");
    assert_eq!(structured(&refused)["error"]["field"], "goal");
    client.cancel().await.expect("closing the session");

    // A wrong key is a tool error, not a crash of the bridge.
    let stranger = stdio_client(&gateway, "em_live_nosuchkey_secret").await;
    let denied = call(
        &stranger,
        "search_failures",
        json!({"query": "anything at all"}),
    )
    .await;
    assert!(is_error(&denied));
    assert_eq!(structured(&denied)["error"]["code"], "unauthenticated");
    stranger.cancel().await.expect("closing the session");
}

/// One JSON-RPC request to `/mcp`; the JSON answer.
fn rpc(gateway: &Gateway, key: Option<&str>, id: u64, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let bytes = serde_json::to_vec(&body).unwrap();
    let response = gateway.raw(
        "POST",
        "/mcp",
        key,
        &[
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        Some(&bytes),
    );
    assert_eq!(response.status, 200, "{}", response.text);
    response.json
}

fn tool_call(gateway: &Gateway, key: Option<&str>, id: u64, tool: &str, args: Value) -> Value {
    let answer = rpc(
        gateway,
        key,
        id,
        "tools/call",
        json!({"name": tool, "arguments": args}),
    );
    answer["result"].clone()
}

#[test]
fn streamable_http_endpoint_authenticates_each_call_with_rest_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gateway = Gateway::start(dir.path(), &engine, &[]);
    let (customer, key) = gateway.customer("PRO", &["read", "write"]);
    let gate_key = gateway.key(&customer, &["gate"], None);
    let (_, other_key) = gateway.customer("PRO", &["read", "write"]);

    let init = rpc(
        &gateway,
        Some(&key),
        1,
        "initialize",
        json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "kyro-test", "version": "0"},
        }),
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "kyrodb", "{init}");
    let listed = rpc(&gateway, Some(&key), 2, "tools/list", json!({}));
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for tool in TOOLS {
        assert!(names.contains(&tool), "{tool} missing from {names:?}");
    }

    let recorded = tool_call(&gateway, Some(&key), 3, "record_failure", failure());
    assert_ne!(recorded["isError"], true, "{recorded}");
    let id = recorded["structuredContent"]["episode_id"]
        .as_u64()
        .expect("an episode id");

    // No key: the tool answers unauthenticated.
    let anonymous = tool_call(&gateway, None, 4, "get_episode", json!({"episode_id": id}));
    assert_eq!(anonymous["isError"], true);
    assert_eq!(
        anonymous["structuredContent"]["error"]["code"],
        "unauthenticated"
    );

    // A gate key may check actions but not write.
    let gate = tool_call(
        &gateway,
        Some(&gate_key),
        5,
        "check_action",
        json!({"goal": "install numpy in a fresh python 3.12 virtualenv",
               "proposed_action": "pip install numpy==1.24.0", "tool": "pip"}),
    );
    assert_ne!(gate["isError"], true, "{gate}");
    assert_eq!(gate["structuredContent"]["decision"], "block");
    let gate_write = tool_call(&gateway, Some(&gate_key), 6, "record_failure", failure());
    assert_eq!(gate_write["isError"], true);
    assert_eq!(
        gate_write["structuredContent"]["error"]["code"],
        "forbidden"
    );

    // Another customer never sees it.
    let foreign = tool_call(
        &gateway,
        Some(&other_key),
        7,
        "get_episode",
        json!({"episode_id": id}),
    );
    assert_eq!(foreign["isError"], true);
    assert_eq!(foreign["structuredContent"]["error"]["code"], "not_found");

    // The capture counted against the quota like a REST capture.
    let usage = gateway.call(
        "GET",
        &format!("/api/v1/customers/{customer}/usage"),
        &gateway.admin_key,
        None,
    );
    assert_eq!(usage.json["months"][0]["captures"], 1, "{}", usage.text);

    // Arguments of the wrong type are refused before anything runs.
    let wrong = rpc(
        &gateway,
        Some(&key),
        8,
        "tools/call",
        json!({"name": "get_episode", "arguments": {"episode_id": "seven"}}),
    );
    assert!(
        wrong.get("error").is_some() || wrong["result"]["isError"] == true,
        "{wrong}"
    );
}

/// A virtualenv with the official MCP Python SDK, made once per machine.
fn mcp_python() -> std::path::PathBuf {
    let home = std::env::var_os("HOME").expect("HOME");
    let venv = Path::new(&home).join(".cache/kyrodb/venv-mcp");
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", "from mcp.client.streamable_http import streamable_http_client; import mcp.client.stdio"])
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(made.success(), "could not create {}", venv.display());
        let installed = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "mcp>=2.3,<3"])
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .status()
            .expect("pip install mcp");
        assert!(installed.success(), "pip install mcp failed");
    }
    python
}

#[test]
fn python_sdk_session_over_both_transports() {
    let python = mcp_python();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gateway = Gateway::start(dir.path(), &engine, &[]);
    let (_, key) = gateway.customer("PRO", &["read", "write"]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_session.py");
    for transport in ["http", "stdio"] {
        let output = Command::new(&python)
            .arg(&script)
            .args(["--transport", transport])
            .args(["--url", &format!("http://{}", gateway.address)])
            .args(["--key", &key])
            .args(["--gateway-bin", env!("CARGO_BIN_EXE_kyro-gateway")])
            .output()
            .expect("running the Python MCP session");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{transport}: the Python session failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        assert!(
            stdout.lines().any(|l| l == format!("ok {transport}")),
            "{transport}: {stdout}"
        );
    }
}
