//! End-to-end tests of episodes: capture, search, reflect, isolation,
//! quotas, idempotency, redaction, erasure, skills, and the engine going
//! away. Real kyro-server, real gateway, real SQLite file, real model.
//!
//! They need the embedder; in a gateway built without one they say so and
//! return (`api_gateway::embed::BUILT_IN`).

mod common;

use std::sync::{Arc, Barrier};

use common::{episode, Engine, Gateway};
use serde_json::json;

fn embedder_built_in() -> bool {
    if !api_gateway::embed::BUILT_IN {
        eprintln!("skipped: this gateway is built without an embedder");
    }
    api_gateway::embed::BUILT_IN
}

const GOAL: &str = "install numpy in a fresh python 3.12 virtualenv";
const ACTION: &str = "pip install numpy==1.24.0";
const TRACE: &str = "Traceback (most recent call last):\n  File \"/home/dev/proj/setup.py\", line 12\nModuleNotFoundError: No module named 'distutils'";

#[test]
fn capture_then_search_finds_it_and_reflect_gates_repeats() {
    if !embedder_built_in() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (_, key) = gw.customer("PRO", &["read", "write"]);

    let first = gw.call(
        "POST",
        "/api/v1/capture",
        &key,
        Some(&episode(GOAL, ACTION, "pip", TRACE)),
    );
    assert_eq!(first.status, 201, "{}", first.text);
    let id = first.json["episode_id"].as_u64().unwrap();
    assert_eq!(first.json["status"], "created");
    assert_eq!(
        first.json["error_signature"]["fingerprint"]
            .as_str()
            .unwrap()
            .len(),
        16
    );
    // The home path's user name was redacted and reported by kind.
    assert_eq!(first.json["redactions"]["home_path"], 1);

    // An unrelated failure, so that search has something to rank below it.
    let other = gw.call(
        "POST",
        "/api/v1/capture",
        &key,
        Some(&json!({
            "goal": "deploy the web app to the staging kubernetes cluster",
            "tool_chain": ["kubectl"],
            "actions_taken": ["kubectl apply -f deploy.yaml"],
            "error_trace": "error: You must be logged in to the server (Unauthorized)",
            "error_class": "permission_error"
        })),
    );
    assert_eq!(other.status, 201, "{}", other.text);

    let found = gw.call(
        "POST",
        "/api/v1/search",
        &key,
        Some(&json!({"goal": "numpy install fails in new python 3.12 venv", "k": 5, "current_state": {"python": "3.11"}})),
    );
    assert_eq!(found.status, 200, "{}", found.text);
    let results = found.json["results"].as_array().unwrap();
    assert_eq!(
        results[0]["episode_id"].as_u64(),
        Some(id),
        "{}",
        found.text
    );
    let c = &results[0]["components"];
    for name in ["similarity", "precondition", "recency", "usage"] {
        let v = c[name].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{name} = {v}");
    }
    // python=3.11.4 stored vs 3.11 now: version-aware, not exact, not zero.
    assert!(
        (c["precondition"].as_f64().unwrap() - 0.9).abs() < 0.11,
        "{c}"
    );
    assert!(results[0]["explanation"]
        .as_str()
        .unwrap()
        .contains("similar"));
    assert_eq!(results[0]["episode"]["goal"], GOAL);
    assert!(results[0]["score"].as_f64() >= results[1]["score"].as_f64());

    // The same failure again: folded into the episode, counted, not stored twice.
    let again = gw.call(
        "POST",
        "/api/v1/capture",
        &key,
        Some(&episode(GOAL, ACTION, "pip", TRACE)),
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["linked_to"].as_u64(), Some(id));
    assert_eq!(again.json["occurrences"], 2);
    let listed = gw.call("GET", "/api/v1/episodes", &key, None);
    assert_eq!(listed.json["episodes"].as_array().unwrap().len(), 2);

    let block = gw.call(
        "POST",
        "/api/v1/reflect",
        &key,
        Some(&json!({"goal": GOAL, "proposed_action": ACTION, "tool": "pip", "current_state": {"python": "3.11.4"}})),
    );
    assert_eq!(block.status, 200, "{}", block.text);
    assert_eq!(block.json["decision"], "block", "{}", block.text);
    assert_eq!(
        block.json["matched_episodes"][0]["episode_id"].as_u64(),
        Some(id)
    );
    assert_eq!(
        block.json["suggested_action"],
        "pin numpy<2 in requirements.txt"
    );

    let proceed = gw.call(
        "POST",
        "/api/v1/reflect",
        &key,
        Some(&json!({"goal": "write release notes for version 2.0 of the documentation site", "proposed_action": "open CHANGELOG.md in the editor", "tool": "vim", "current_state": {}})),
    );
    assert_eq!(proceed.status, 200, "{}", proceed.text);
    assert_eq!(proceed.json["decision"], "proceed", "{}", proceed.text);

    // Fix feedback makes a skill after 3 successes.
    for _ in 0..3 {
        let r = gw.call(
            "POST",
            "/api/v1/validate_fix",
            &key,
            Some(&json!({"episode_id": id, "outcome": "success", "applied_suggestion": "pin numpy<2"})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let skills = gw.call("GET", "/api/v1/skills", &key, None);
    assert_eq!(
        skills.json["skills"][0]["episode_id"].as_u64(),
        Some(id),
        "{}",
        skills.text
    );

    // Erasure: gone from search, get and list before the 204.
    assert_eq!(
        gw.call("DELETE", &format!("/api/v1/episodes/{id}"), &key, None)
            .status,
        204
    );
    assert_eq!(
        gw.call("GET", &format!("/api/v1/episodes/{id}"), &key, None)
            .status,
        404
    );
    let after = gw.call(
        "POST",
        "/api/v1/search",
        &key,
        Some(&json!({"goal": GOAL, "k": 10})),
    );
    assert!(after.json["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["episode_id"].as_u64() != Some(id)));
    assert_eq!(
        gw.call("GET", "/api/v1/skills", &key, None).json["skills"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn customers_never_see_each_others_episodes() {
    if !embedder_built_in() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (_, a) = gw.customer("FREE", &["read", "write"]);
    let (_, b) = gw.customer("FREE", &["read", "write"]);
    let captured = gw.call(
        "POST",
        "/api/v1/capture",
        &a,
        Some(&episode(GOAL, ACTION, "pip", TRACE)),
    );
    assert_eq!(captured.status, 201, "{}", captured.text);
    let id = captured.json["episode_id"].as_u64().unwrap();
    for _ in 0..3 {
        gw.call(
            "POST",
            "/api/v1/validate_fix",
            &a,
            Some(&json!({"episode_id": id, "outcome": "success"})),
        );
    }

    let search = gw.call("POST", "/api/v1/search", &b, Some(&json!({"goal": GOAL})));
    assert_eq!(search.status, 200);
    assert_eq!(
        search.json["results"].as_array().unwrap().len(),
        0,
        "{}",
        search.text
    );
    let reflect = gw.call(
        "POST",
        "/api/v1/reflect",
        &b,
        Some(&json!({"goal": GOAL, "proposed_action": ACTION, "tool": "pip"})),
    );
    assert_eq!(reflect.json["decision"], "proceed");
    assert_eq!(
        gw.call("GET", &format!("/api/v1/episodes/{id}"), &b, None)
            .status,
        404
    );
    assert_eq!(
        gw.call("GET", "/api/v1/episodes", &b, None).json["episodes"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        gw.call("DELETE", &format!("/api/v1/episodes/{id}"), &b, None)
            .status,
        404
    );
    assert_eq!(
        gw.call(
            "POST",
            "/api/v1/validate_fix",
            &b,
            Some(&json!({"episode_id": id, "outcome": "still_failed"}))
        )
        .status,
        404
    );
    assert_eq!(
        gw.call("GET", "/api/v1/skills", &b, None).json["skills"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // A's episode is untouched by B's attempts.
    let mine = gw.call("GET", &format!("/api/v1/episodes/{id}"), &a, None);
    assert_eq!(mine.status, 200);
    assert_eq!(mine.json["fix_failures"], 0);
    assert_eq!(mine.json["is_skill"], true);
}

#[test]
fn quota_warns_at_80_percent_allows_20_percent_grace_and_never_overshoots_under_concurrency() {
    if !embedder_built_in() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(
        dir.path(),
        &engine,
        &["rate_limits.free.capture_per_minute=1000"],
    );
    let (id, key) = gw.customer("FREE", &["read", "write"]);
    let body = episode(GOAL, ACTION, "pip", TRACE);
    for n in 1..=100u64 {
        let r = gw.call("POST", "/api/v1/capture", &key, Some(&body));
        assert!(
            r.status == 201 || r.status == 200,
            "capture {n}: {}",
            r.text
        );
        assert_eq!(
            r.header("x-quota-warning").is_some(),
            n >= 80,
            "capture {n}"
        );
    }
    // 50 at once at the edge: exactly the 20 % grace gets through.
    let gw = Arc::new(gw);
    let barrier = Arc::new(Barrier::new(50));
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let (gw, barrier, key, body) = (gw.clone(), barrier.clone(), key.clone(), body.clone());
            std::thread::spawn(move || {
                barrier.wait();
                gw.call("POST", "/api/v1/capture", &key, Some(&body))
            })
        })
        .collect();
    let responses: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = responses
        .iter()
        .filter(|r| r.status == 200 || r.status == 201)
        .count();
    let refused: Vec<_> = responses.iter().filter(|r| r.status == 429).collect();
    assert_eq!(
        ok,
        20,
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 30);
    assert_eq!(refused[0].code(), "quota_exceeded");
    assert!(responses
        .iter()
        .filter(|r| r.status != 429)
        .all(|r| r.header("x-quota-warning").is_some()));
    let usage = gw.call(
        "GET",
        &format!("/api/v1/customers/{id}/usage"),
        &gw.admin_key,
        None,
    );
    assert_eq!(usage.json["months"][0]["captures"], 120, "{}", usage.text);
}

#[test]
fn idempotency_keys_replay_the_first_answer_and_refuse_another_body() {
    if !embedder_built_in() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (id, key) = gw.customer("FREE", &["read", "write"]);
    let body = serde_json::to_vec(&episode(GOAL, ACTION, "pip", TRACE)).unwrap();
    let headers = [("Idempotency-Key", "retry-42")];
    let first = gw.raw("POST", "/api/v1/capture", Some(&key), &headers, Some(&body));
    assert_eq!(first.status, 201, "{}", first.text);
    let second = gw.raw("POST", "/api/v1/capture", Some(&key), &headers, Some(&body));
    assert_eq!(second.status, 201);
    assert_eq!(second.text, first.text);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    let other = serde_json::to_vec(&episode(
        "a completely different goal here",
        ACTION,
        "pip",
        TRACE,
    ))
    .unwrap();
    let conflict = gw.raw(
        "POST",
        "/api/v1/capture",
        Some(&key),
        &headers,
        Some(&other),
    );
    assert_eq!(conflict.status, 409);
    let usage = gw.call(
        "GET",
        &format!("/api/v1/customers/{id}/usage"),
        &gw.admin_key,
        None,
    );
    assert_eq!(
        usage.json["months"][0]["captures"], 1,
        "a replay is not charged again"
    );
}

#[test]
fn no_pii_from_a_capture_reaches_storage_logs_or_responses() {
    if !embedder_built_in() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (_, key) = gw.customer("FREE", &["read", "write"]);
    let secrets = [
        "jane.doe@example.com",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "sk-proj-abcdefghijklmnopqrstuvwxyz123456",
        "hunter2hunter2",
        "s3cr3tpassw0rd",
        "4111 1111 1111 1111",
        "123-45-6789",
        "203.0.113.77",
        "/home/janedoe/",
    ];
    let body = json!({
        "goal": "connect to the database as jane.doe@example.com from 203.0.113.77",
        "tool_chain": ["psql"],
        "actions_taken": ["psql postgres://admin:s3cr3tpassw0rd@db.example.com/app", "export AWS_KEY=AKIAIOSFODNN7EXAMPLE"],
        "error_trace": "FATAL: password authentication failed; password=hunter2hunter2 token ghp_abcdefghijklmnopqrstuvwxyz0123456789 in /home/janedoe/app/db.py",
        "error_class": "permission_error",
        "code_state_diff": "+OPENAI_KEY = \"sk-proj-abcdefghijklmnopqrstuvwxyz123456\"",
        "environment_info": {"user_email": "jane.doe@example.com", "ssn": "123-45-6789"},
        "resolution": "card 4111 1111 1111 1111 was on file",
        "tags": ["db", "jane.doe@example.com"]
    });
    let captured = gw.call("POST", "/api/v1/capture", &key, Some(&body));
    assert_eq!(captured.status, 201, "{}", captured.text);
    let counts = &captured.json["redactions"];
    for kind in [
        "email",
        "aws_access_key",
        "github_token",
        "api_key",
        "password",
        "url_credentials",
        "card_number",
        "ssn",
        "ip_address",
        "home_path",
    ] {
        assert!(
            counts[kind].as_u64().unwrap_or(0) >= 1,
            "{kind} not counted: {counts}"
        );
    }
    let id = captured.json["episode_id"].as_u64().unwrap();
    let stored = gw.call("GET", &format!("/api/v1/episodes/{id}"), &key, None);
    assert_eq!(stored.status, 200);
    let search = gw.call(
        "POST",
        "/api/v1/search",
        &key,
        Some(&json!({"goal": "database password authentication failed"})),
    );
    let logs = gw.logs();
    assert!(logs.contains("finished"), "the gateway logged requests");
    assert!(
        !logs.contains('\u{1b}'),
        "terminal colour codes in a log written to a file"
    );
    let mut files = String::new();
    for entry in walk(&gw.data_dir) {
        files.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    for secret in secrets {
        assert!(
            !stored.text.contains(secret),
            "{secret} in the stored episode"
        );
        assert!(!search.text.contains(secret), "{secret} in a search result");
        assert!(!logs.contains(secret), "{secret} in the logs");
        assert!(
            !files.contains(secret),
            "{secret} in the gateway's database files"
        );
        assert!(
            !captured.text.contains(secret),
            "{secret} in the capture response"
        );
    }
    assert!(!logs.contains(&key), "an API key in the logs");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn the_gateway_answers_503_while_the_engine_is_down_and_recovers() {
    if !embedder_built_in() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let (text, image) = (engine.text, engine.image);
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (id, key) = gw.customer("FREE", &["read", "write"]);
    let captured = gw.call(
        "POST",
        "/api/v1/capture",
        &key,
        Some(&episode(GOAL, ACTION, "pip", TRACE)),
    );
    assert_eq!(captured.status, 201, "{}", captured.text);

    engine.stop();
    let reflect = json!({"goal": GOAL, "proposed_action": ACTION, "tool": "pip"});
    let down = gw.call("POST", "/api/v1/reflect", &key, Some(&reflect));
    assert_eq!(down.status, 503, "{}", down.text);
    assert_eq!(down.code(), "unavailable");
    assert!(
        down.json.get("decision").is_none(),
        "never a silent proceed"
    );
    let search = gw.call("POST", "/api/v1/search", &key, Some(&json!({"goal": GOAL})));
    assert_eq!(search.status, 503);
    let capture = gw.call(
        "POST",
        "/api/v1/capture",
        &key,
        Some(&episode(
            "another goal that is new",
            "npm ci",
            "npm",
            "npm ERR! code ENOTFOUND",
        )),
    );
    assert_eq!(capture.status, 503, "{}", capture.text);
    // The failed capture charged nothing.
    let usage = gw.call(
        "GET",
        &format!("/api/v1/customers/{id}/usage"),
        &gw.admin_key,
        None,
    );
    assert_eq!(usage.json["months"][0]["captures"], 1, "{}", usage.text);

    let _engine = Engine::start_on(dir.path(), &text.to_string(), &image.to_string());
    let mut recovered = None;
    for _ in 0..100 {
        let r = gw.call("POST", "/api/v1/reflect", &key, Some(&reflect));
        if r.status == 200 {
            recovered = Some(r);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let recovered = recovered.expect("the gateway recovers when the engine returns");
    assert_eq!(recovered.json["decision"], "block", "{}", recovered.text);
}

/// Retrievals and query counts are gathered in memory and written in
/// batches (`store::tallies`): a read that shows them sees every query
/// already answered, a quiet gateway writes them within a second, and a
/// graceful stop writes the last ones.
#[test]
fn query_counts_are_seen_at_once_written_when_quiet_and_kept_at_shutdown() {
    if !embedder_built_in() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (customer, key) = gw.customer("PRO", &["read", "write"]);
    let captured = gw.call(
        "POST",
        "/api/v1/capture",
        &key,
        Some(&episode(GOAL, ACTION, "pip", TRACE)),
    );
    assert_eq!(captured.status, 201, "{}", captured.text);
    let id = captured.json["episode_id"].as_u64().unwrap();

    let search = || {
        let found = gw.call(
            "POST",
            "/api/v1/search",
            &key,
            Some(&json!({"goal": GOAL, "k": 5})),
        );
        assert_eq!(found.status, 200, "{}", found.text);
        assert_eq!(found.json["results"][0]["episode_id"].as_u64(), Some(id));
    };
    let reflect = || {
        let gate = gw.call(
            "POST",
            "/api/v1/reflect",
            &key,
            Some(&json!({"goal": GOAL, "proposed_action": ACTION, "tool": "pip"})),
        );
        assert_eq!(gate.status, 200, "{}", gate.text);
        assert_eq!(
            gate.json["matched_episodes"][0]["episode_id"].as_u64(),
            Some(id)
        );
    };
    let usage = || {
        let usage = gw.call(
            "GET",
            &format!("/api/v1/customers/{customer}/usage"),
            &gw.admin_key,
            None,
        );
        assert_eq!(usage.status, 200, "{}", usage.text);
        (
            usage.json["months"][0]["searches"].as_u64(),
            usage.json["months"][0]["reflects"].as_u64(),
        )
    };
    let stored = |db: &std::path::Path| -> (i64, i64, i64) {
        let c = rusqlite::Connection::open(db).unwrap();
        let retrievals = c
            .query_row(
                "SELECT retrievals FROM episodes WHERE customer_id = ?1 AND id = ?2",
                rusqlite::params![customer, id as i64],
                |r| r.get(0),
            )
            .unwrap();
        let (searches, reflects) = c
            .query_row(
                "SELECT searches, reflects FROM usage WHERE customer_id = ?1",
                [&customer],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        (retrievals, searches, reflects)
    };

    // Read right after the queries: counted.
    for _ in 0..3 {
        search();
    }
    reflect();
    reflect();
    let shown = gw.call("GET", &format!("/api/v1/episodes/{id}"), &key, None);
    assert_eq!(shown.status, 200, "{}", shown.text);
    assert_eq!(shown.json["retrievals"], 5, "{}", shown.text);
    assert_eq!(usage(), (Some(3), Some(2)));

    // Nothing reads them: the timer writes them to the file.
    search();
    let db = gw.data_dir.join("gateway.db");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stored(&db) != (6, 4, 2) {
        assert!(
            std::time::Instant::now() < deadline,
            "the counters were not written: {:?}",
            stored(&db)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // Queries answered just before a graceful stop are written by it.
    search();
    reflect();
    assert!(gw.stop().success());
    assert_eq!(stored(&db), (8, 5, 3));
    engine.stop();
}
