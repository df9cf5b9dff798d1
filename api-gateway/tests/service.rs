//! End-to-end tests of the gateway's service behaviour that need no
//! embeddings: the admin API, keys (revocation, suspension, scopes), errors,
//! rate limits, health, metrics, configuration. Each test starts the real
//! kyro-server and the real gateway over a real SQLite file.

mod common;

use common::{Engine, Gateway};
use serde_json::json;

#[test]
fn admin_api_manages_customers_and_keys_and_audits_every_action() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let admin = gw.admin_key.clone();

    let created = gw.call(
        "POST",
        "/api/v1/customers",
        &admin,
        Some(&json!({"name": "Acme", "tier": "PRO"})),
    );
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json["customer_id"].as_str().unwrap().to_owned();
    assert_eq!(created.json["monthly_quota"], 10_000);

    let fetched = gw.call("GET", &format!("/api/v1/customers/{id}"), &admin, None);
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.json["name"], "Acme");
    let patched = gw.call(
        "PATCH",
        &format!("/api/v1/customers/{id}"),
        &admin,
        Some(&json!({"tier": "ENTERPRISE"})),
    );
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json["tier"], "ENTERPRISE");
    assert!(patched.json["monthly_quota"].is_null());

    let key = gw.call(
        "POST",
        &format!("/api/v1/customers/{id}/keys"),
        &admin,
        Some(&json!({"scopes": ["read", "write"], "project": "acme/api", "expires_at": "2099-01-01T00:00:00Z"})),
    );
    assert_eq!(key.status, 201, "{}", key.text);
    let api_key = key.json["api_key"].as_str().unwrap();
    let key_id = key.json["key_id"].as_str().unwrap();
    assert!(api_key.starts_with(&format!("em_live_{key_id}_")));

    let keys = gw.call("GET", &format!("/api/v1/customers/{id}/keys"), &admin, None);
    assert_eq!(keys.status, 200);
    assert_eq!(keys.json["keys"][0]["key_id"], key_id);
    assert!(
        !keys.text.contains(api_key.rsplit('_').next().unwrap()),
        "a listing shows no secret"
    );

    let usage = gw.call(
        "GET",
        &format!("/api/v1/customers/{id}/usage"),
        &admin,
        None,
    );
    assert_eq!(usage.status, 200);
    assert_eq!(usage.json["customer_id"], id.as_str());

    // A customer key is no admin.
    let denied = gw.call("GET", "/api/v1/audit", api_key, None);
    assert_eq!(denied.status, 403);
    assert_eq!(denied.code(), "forbidden");

    let missing = gw.call("GET", "/api/v1/customers/cus_nope", &admin, None);
    assert_eq!(missing.status, 404);

    let audit = gw.call("GET", "/api/v1/audit?limit=50", &admin, None);
    assert_eq!(audit.status, 200);
    let actions: Vec<&str> = audit.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "customer.create",
        "customer.update",
        "key.create",
        "request.denied",
        "key.bootstrap",
    ] {
        assert!(
            actions.contains(&action),
            "{action} missing from {actions:?}"
        );
    }
    let denial = audit.json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "request.denied")
        .unwrap();
    assert_eq!(denial["outcome"], "forbidden");
    assert_eq!(denial["address"], "127.0.0.1");
    assert_eq!(denial["customer_id"], id.as_str());
}

#[test]
fn a_revoked_key_or_suspended_customer_fails_on_the_very_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (id, key) = gw.customer("FREE", &["read", "write"]);
    let second = gw.key(&id, &["read"], None);

    // Warm the key cache, then revoke.
    for _ in 0..3 {
        assert_eq!(gw.call("GET", "/api/v1/episodes", &key, None).status, 200);
    }
    let key_id = key
        .strip_prefix("em_live_")
        .unwrap()
        .split('_')
        .next()
        .unwrap();
    let revoked = gw.call(
        "DELETE",
        &format!("/api/v1/keys/{key_id}"),
        &gw.admin_key,
        None,
    );
    assert_eq!(revoked.status, 204);
    let after = gw.call("GET", "/api/v1/episodes", &key, None);
    assert_eq!(after.status, 401, "{}", after.text);
    assert_eq!(after.code(), "unauthenticated");

    // Suspension: the customer's other key stops at once, and comes back.
    assert_eq!(
        gw.call("GET", "/api/v1/episodes", &second, None).status,
        200
    );
    let suspended = gw.call(
        "POST",
        &format!("/api/v1/customers/{id}/suspend"),
        &gw.admin_key,
        None,
    );
    assert_eq!(suspended.status, 200);
    assert_eq!(suspended.json["status"], "suspended");
    assert_eq!(
        gw.call("GET", "/api/v1/episodes", &second, None).status,
        403
    );
    gw.call(
        "POST",
        &format!("/api/v1/customers/{id}/activate"),
        &gw.admin_key,
        None,
    );
    assert_eq!(
        gw.call("GET", "/api/v1/episodes", &second, None).status,
        200
    );

    // Bearer works as well as X-API-Key; a wrong secret for a real key id does not.
    let bearer = gw.raw(
        "GET",
        "/api/v1/episodes",
        None,
        &[("Authorization", &format!("Bearer {second}"))],
        None,
    );
    assert_eq!(bearer.status, 200);
    let mut forged = second.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == '0' { '1' } else { '0' });
    assert_eq!(
        gw.call("GET", "/api/v1/episodes", &forged, None).status,
        401
    );
}

#[test]
fn scopes_limit_what_a_key_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (id, reader) = gw.customer("FREE", &["read"]);
    let gate = gw.key(&id, &["gate"], None);
    let body = common::episode(
        "install numpy in a fresh venv",
        "pip install numpy",
        "pip",
        "ERROR: No matching distribution found for numpy",
    );
    let denied = gw.call("POST", "/api/v1/capture", &reader, Some(&body));
    assert_eq!(denied.status, 403, "{}", denied.text);
    // A gate key may not read episodes, only search and reflect.
    assert_eq!(gw.call("GET", "/api/v1/episodes", &gate, None).status, 403);
    assert_eq!(
        gw.call("POST", "/api/v1/capture", &gate, Some(&body))
            .status,
        403
    );
    assert_eq!(
        gw.call(
            "POST",
            "/api/v1/customers",
            &reader,
            Some(&json!({"name": "x", "tier": "FREE"}))
        )
        .status,
        403
    );
}

#[test]
fn errors_have_the_documented_status_code_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &["limits.max_body_bytes=65536"]);
    let (_, key) = gw.customer("FREE", &["read", "write"]);

    let malformed = gw.raw(
        "POST",
        "/api/v1/capture",
        Some(&key),
        &[],
        Some(b"{\"goal\": \"abc"),
    );
    assert_eq!(malformed.status, 400, "{}", malformed.text);
    assert_eq!(malformed.code(), "bad_request");

    let mut wrong_type = common::episode(
        "install numpy in a venv",
        "pip install numpy",
        "pip",
        "ERROR: no matching distribution",
    );
    wrong_type["tool_chain"] = json!(["pip", 7]);
    let r = gw.call("POST", "/api/v1/capture", &key, Some(&wrong_type));
    assert_eq!((r.status, r.field()), (422, "tool_chain[1]"), "{}", r.text);

    let mut missing = common::episode(
        "install numpy in a venv",
        "pip install numpy",
        "pip",
        "ERROR: no matching distribution",
    );
    missing.as_object_mut().unwrap().remove("error_trace");
    let r = gw.call("POST", "/api/v1/capture", &key, Some(&missing));
    assert_eq!((r.status, r.field()), (422, "error_trace"), "{}", r.text);

    let mut short = common::episode(
        "short",
        "pip install numpy",
        "pip",
        "ERROR: no matching distribution",
    );
    let r = gw.call("POST", "/api/v1/capture", &key, Some(&short));
    assert_eq!((r.status, r.field()), (422, "goal"), "{}", r.text);
    short["goal"] = json!("a goal long enough");
    short["error_class"] = json!("cosmic_rays");
    let r = gw.call("POST", "/api/v1/capture", &key, Some(&short));
    assert_eq!((r.status, r.field()), (422, "error_class"), "{}", r.text);
    short["error_class"] = json!("unknown");
    short["severity"] = json!(9);
    let r = gw.call("POST", "/api/v1/capture", &key, Some(&short));
    assert_eq!((r.status, r.field()), (422, "severity"), "{}", r.text);
    short["severity"] = json!(1);
    short["tags"] = json!((0..21).map(|i| format!("t{i}")).collect::<Vec<_>>());
    let r = gw.call("POST", "/api/v1/capture", &key, Some(&short));
    assert_eq!((r.status, r.field()), (422, "tags"), "{}", r.text);
    short["tags"] = json!([]);
    short["preconditions"] = json!(["python 3.11"]);
    let r = gw.call("POST", "/api/v1/capture", &key, Some(&short));
    assert_eq!(
        (r.status, r.field()),
        (422, "preconditions[0]"),
        "{}",
        r.text
    );
    short["preconditions"] = json!({});
    short["image_embedding"] = json!([0.5, 0.5]);
    let r = gw.call("POST", "/api/v1/capture", &key, Some(&short));
    assert_eq!(
        (r.status, r.field()),
        (422, "image_embedding"),
        "{}",
        r.text
    );

    let r = gw.call(
        "POST",
        "/api/v1/search",
        &key,
        Some(&json!({"goal": "x", "k": 1000})),
    );
    assert_eq!((r.status, r.field()), (422, "k"), "{}", r.text);

    // 413 on the real body size (the declared length matches what is sent).
    let big = vec![b'x'; 100_000];
    let r = gw.raw("POST", "/api/v1/capture", Some(&key), &[], Some(&big));
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.code(), "payload_too_large");

    let r = gw.call("GET", "/api/v1/nothing-here", &key, None);
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = gw.call("GET", "/api/v1/episodes/999", &key, None);
    assert_eq!((r.status, r.code()), (404, "not_found"));
    let r = gw.raw("GET", "/api/v1/episodes", None, &[], None);
    assert_eq!((r.status, r.code()), (401, "unauthenticated"));
    let r = gw.call("GET", "/api/v1/episodes?limit=0", &key, None);
    assert_eq!((r.status, r.field()), (422, "limit"), "{}", r.text);

    // Request ids: generated, or the client's echoed.
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
    let echoed = gw.raw(
        "GET",
        "/health/liveness",
        None,
        &[("X-Request-Id", "req-123")],
        None,
    );
    assert_eq!(echoed.header("x-request-id"), Some("req-123"));
}

#[test]
fn rate_limits_answer_429_with_retry_after_and_failed_logins_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(
        dir.path(),
        &engine,
        &[
            "rate_limits.free.other_per_minute=3",
            "limits.failed_auth_per_minute=3",
        ],
    );
    let (_, key) = gw.customer("FREE", &["read"]);
    let (_, other) = gw.customer("FREE", &["read"]);
    let statuses: Vec<u16> = (0..5)
        .map(|_| gw.call("GET", "/api/v1/episodes", &key, None).status)
        .collect();
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    let limited = gw.call("GET", "/api/v1/episodes", &key, None);
    assert_eq!(limited.status, 429);
    assert_eq!(limited.code(), "rate_limited");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Per customer: another customer is not affected.
    assert_eq!(gw.call("GET", "/api/v1/episodes", &other, None).status, 200);

    for _ in 0..3 {
        let bad = gw.call(
            "GET",
            "/api/v1/episodes",
            "em_live_0000000000000000_000000000000000000000000000000000000000000000000",
            None,
        );
        assert_eq!(bad.status, 401);
    }
    let throttled = gw.call("GET", "/api/v1/episodes", &other, None);
    assert_eq!(throttled.status, 429, "{}", throttled.text);
    assert!(throttled.header("retry-after").is_some());
}

#[test]
fn health_metrics_and_graceful_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let live = gw.raw("GET", "/health/liveness", None, &[], None);
    assert_eq!(live.status, 200);
    assert_eq!(live.json["status"], "live");
    let ready = gw.raw("GET", "/health/readiness", None, &[], None);
    assert_eq!(ready.json["checks"]["database"], true);
    assert_eq!(ready.json["checks"]["engine_text"], true);
    assert_eq!(ready.json["checks"]["engine_image"], true);
    let model = ready.json["checks"]["model"].as_bool().unwrap();
    assert_eq!(ready.status, if model { 200 } else { 503 });
    assert_eq!(model, api_gateway::embed::BUILT_IN);

    let (_, key) = gw.customer("FREE", &["read"]);
    gw.call("GET", "/api/v1/episodes", &key, None);
    let metrics = gw.raw("GET", "/metrics", None, &[], None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text.contains("gateway_requests_total{"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("route=\"/api/v1/episodes\""));
    assert!(metrics
        .text
        .contains("gateway_request_duration_seconds_bucket"));

    // The API describes itself (OpenAPI 3.1, no key) and the interactive
    // docs are served from the binary.
    let openapi = gw.raw("GET", "/openapi.json", None, &[], None);
    assert_eq!(openapi.status, 200, "{}", openapi.text);
    assert!(openapi.json["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    let capture = &openapi.json["paths"]["/api/v1/capture"]["post"];
    assert!(capture["requestBody"].is_object(), "{capture}");
    assert!(capture["responses"]["422"].is_object(), "{capture}");
    let docs = gw.raw("GET", "/docs/", None, &[], None);
    assert_eq!(docs.status, 200);
    assert!(docs.text.contains("swagger"), "{}", docs.text);
    let script = gw.raw("GET", "/docs/swagger-ui-bundle.js", None, &[], None);
    assert_eq!(script.status, 200);
    assert!(
        script.text.len() > 100_000,
        "the Swagger UI bundle is served"
    );

    // Readiness fails while the engine is down.
    engine.stop();
    let down = gw.raw("GET", "/health/readiness", None, &[], None);
    assert_eq!(down.status, 503);
    assert_eq!(down.json["checks"]["engine_text"], false);

    let status = gw.stop();
    assert!(status.success(), "{status:?}");
}

#[test]
fn print_config_shows_the_layers_without_the_service_key() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kyro-gateway"))
        .args([
            "--print-config",
            "--listen",
            "127.0.0.1:9999",
            "--set",
            "engine.timeout_ms=1234",
        ])
        .env("KYRO_GATEWAY_SERVICE_KEY", "kyro_sk_secret_value")
        .env("KYRO_GATEWAY__RATE_LIMITS__FREE__CAPTURE_PER_MINUTE", "7")
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:9999\""), "{text}");
    assert!(text.contains("timeout_ms = 1234"));
    assert!(text.contains("capture_per_minute = 7"));
    assert!(!text.contains("kyro_sk_secret_value"));
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_kyro-gateway"))
        .args(["--print-config", "--set", "log.format=xml"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("log.format"));
}
