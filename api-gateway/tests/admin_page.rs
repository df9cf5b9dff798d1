//! The admin web page's routes: the page and its assets with their security
//! headers, and the JSON it reads (`/api/v1/admin/…`): admin scope
//! required, shapes as documented in docs/gateway.md. Real kyro-server,
//! real gateway, real SQLite file. (The page itself is tested in a browser:
//! scripts/test-browser.sh.)

mod common;

use common::{episode, Engine, Gateway};
use serde_json::json;

#[test]
fn the_page_and_its_assets_carry_a_strict_policy_and_no_inline_script() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);

    for (path, content_type) in [
        ("/admin", "text/html"),
        ("/admin/", "text/html"),
        ("/admin/app.js", "text/javascript"),
        ("/admin/app.css", "text/css"),
    ] {
        let page = gw.raw("GET", path, None, &[], None);
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.header("content-type")
                .is_some_and(|v| v.starts_with(content_type)),
            "{path}: {:?}",
            page.header("content-type")
        );
        let csp = page.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            page.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            page.header("referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        assert!(page.header("set-cookie").is_none(), "{path}");
    }

    let html = gw.raw("GET", "/admin", None, &[], None).text;
    // Scripts only by reference: every <script> has a src and no body.
    assert_eq!(
        html.matches("<script").count(),
        html.matches("<script src=\"/admin/app.js\" defer></script>")
            .count()
    );
    assert!(!html.contains(" style="), "no inline styles");
    assert!(!html.contains("em_live_") || html.contains("placeholder=\"em_live_…\""));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no CDN"
    );
    let js = gw.raw("GET", "/admin/app.js", None, &[], None).text;
    assert!(!js.contains("innerHTML"), "values go in as text");
    assert!(js.contains("sessionStorage") && js.contains("X-API-Key"));
}

#[test]
fn admin_json_needs_the_admin_scope() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (_, key) = gw.customer("PRO", &["read", "write", "gate"]);

    let search = json!({"customer_id": "cus_x", "goal": "anything at all"});
    for (method, path, body) in [
        ("GET", "/api/v1/admin/customers", None),
        ("GET", "/api/v1/admin/engine", None),
        ("GET", "/api/v1/admin/latency", None),
        ("POST", "/api/v1/admin/search", Some(&search)),
    ] {
        let denied = gw.call(method, path, &key, body);
        assert_eq!(denied.status, 403, "{path}: {}", denied.text);
        assert_eq!(denied.code(), "forbidden");
        let body = body.map(|b| serde_json::to_vec(b).unwrap());
        let anonymous = gw.raw(method, path, None, &[], body.as_deref());
        assert_eq!(anonymous.status, 401, "{path}");
        assert_eq!(anonymous.code(), "unauthenticated");
    }
}

#[test]
fn customers_list_usage_against_quota_and_active_keys() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (id, _) = gw.customer("FREE", &["read", "write"]);
    let second = gw.key(&id, &["read"], None);
    let second_id = second.split('_').nth(2).unwrap();
    let revoked = gw.call(
        "DELETE",
        &format!("/api/v1/keys/{second_id}"),
        &gw.admin_key,
        None,
    );
    assert_eq!(revoked.status, 204);

    let list = gw.call("GET", "/api/v1/admin/customers", &gw.admin_key, None);
    assert_eq!(list.status, 200, "{}", list.text);
    let month = list.json["month"].as_str().unwrap();
    assert_eq!(month.len(), 7, "{month}");
    let customers = list.json["customers"].as_array().unwrap();
    assert_eq!(customers.len(), 2);
    assert_eq!(customers[0]["name"], "operator", "creation order");
    assert!(
        customers[0]["quota_used"].is_null(),
        "ENTERPRISE: unlimited"
    );
    let acme = &customers[1];
    assert_eq!(acme["customer_id"], id.as_str());
    assert_eq!(acme["tier"], "FREE");
    assert_eq!(acme["status"], "active");
    assert_eq!(acme["monthly_quota"], 100);
    assert_eq!(acme["usage"]["month"], month);
    assert_eq!(acme["usage"]["captures"], 0);
    assert_eq!(acme["quota_used"], 0.0);
    assert_eq!(acme["active_keys"], 1, "the revoked key is not counted");
    assert!(list.json["next_offset"].is_null());

    let page = gw.call(
        "GET",
        "/api/v1/admin/customers?limit=1",
        &gw.admin_key,
        None,
    );
    assert_eq!(page.json["customers"].as_array().unwrap().len(), 1);
    assert_eq!(page.json["next_offset"], 1);
    let rest = gw.call(
        "GET",
        "/api/v1/admin/customers?limit=1&offset=1",
        &gw.admin_key,
        None,
    );
    assert_eq!(rest.json["customers"][0]["customer_id"], id.as_str());
    let bad = gw.call(
        "GET",
        "/api/v1/admin/customers?limit=0",
        &gw.admin_key,
        None,
    );
    assert_eq!(bad.status, 422);
    assert_eq!(bad.field(), "limit");
}

#[test]
fn engine_figures_per_instance_and_per_customer() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (id, _) = gw.customer("PRO", &["read", "write"]);

    // The tests' kyro-server key has read, write, service but not admin:
    // no instance-wide figures, and the answer says why.
    let whole = gw.call("GET", "/api/v1/admin/engine", &gw.admin_key, None);
    assert_eq!(whole.status, 200, "{}", whole.text);
    let instances = whole.json["instances"].as_array().unwrap();
    let names: Vec<&str> = instances
        .iter()
        .map(|i| i["instance"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["text", "image"]);
    for instance in instances {
        assert_eq!(instance["reachable"], true);
        assert!(instance["stats"].is_null());
        assert!(instance["note"].as_str().unwrap().contains("admin scope"));
    }

    let one = gw.call(
        "GET",
        &format!("/api/v1/admin/engine?customer_id={id}"),
        &gw.admin_key,
        None,
    );
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.json["customer_id"], id.as_str());
    let text = &one.json["instances"][0];
    assert_eq!(text["scope"], "tenant");
    assert_eq!(text["stats"]["dim"], 384);
    assert_eq!(text["stats"]["points"], 0);
    assert!(text["stats"]["cold_segments"].is_u64());
    assert!(text["stats"]["query_cache"].is_null(), "instance-wide only");
    assert_eq!(one.json["instances"][1]["stats"]["dim"], 512);

    let missing = gw.call(
        "GET",
        "/api/v1/admin/engine?customer_id=cus_nope",
        &gw.admin_key,
        None,
    );
    assert_eq!(missing.status, 404);

    // With kyro-server gone: still 200, each instance unreachable.
    engine.stop();
    let down = gw.call("GET", "/api/v1/admin/engine", &gw.admin_key, None);
    assert_eq!(down.status, 200, "{}", down.text);
    assert_eq!(down.json["instances"][0]["reachable"], false);
    assert!(down.json["instances"][0]["note"].is_string());
}

#[test]
fn latency_summarises_the_gateways_own_metrics_per_route() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    gw.customer("PRO", &["read"]);
    let missing = gw.call("GET", "/api/v1/customers/cus_nope", &gw.admin_key, None);
    assert_eq!(missing.status, 404);
    gw.call("GET", "/api/v1/admin/engine", &gw.admin_key, None);

    let summary = gw.call("GET", "/api/v1/admin/latency", &gw.admin_key, None);
    assert_eq!(summary.status, 200, "{}", summary.text);
    let routes = summary.json["routes"].as_array().unwrap();
    let find = |route: &str, method: &str| {
        routes
            .iter()
            .find(|r| r["route"] == route && r["method"] == method)
            .unwrap_or_else(|| panic!("{method} {route} in {routes:?}"))
    };
    let create = find("/api/v1/customers", "POST");
    assert_eq!(create["requests"], 1);
    assert_eq!(create["statuses"]["2xx"], 1);
    let latency = &create["latency"];
    assert_eq!(latency["count"], 1);
    for field in ["mean_ms", "p50_ms", "p95_ms", "p99_ms", "sum_seconds"] {
        assert!(latency[field].as_f64().unwrap() > 0.0, "{field}: {latency}");
    }
    let buckets = latency["buckets"].as_array().unwrap();
    assert!(buckets.len() > 2);
    assert!(buckets.last().unwrap()["le"].is_null(), "+Inf last");
    let get = find("/api/v1/customers/{id}", "GET");
    assert_eq!(get["statuses"]["4xx"], 1);
    // Engine calls: the Stats RPCs just made.
    let engine_calls = summary.json["engine"].as_array().unwrap();
    assert!(
        engine_calls
            .iter()
            .any(|c| c["rpc"] == "stats" && c["instance"] == "text" && c["calls"] == 1),
        "{engine_calls:?}"
    );
}

#[test]
fn admin_search_ranks_a_customers_episodes_audited_and_uncounted() {
    if !api_gateway::embed::BUILT_IN {
        eprintln!("skipped: this gateway is built without an embedder");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::start(dir.path());
    let gw = Gateway::start(dir.path(), &engine, &[]);
    let (id, key) = gw.customer("PRO", &["read", "write"]);
    let captured = gw.call(
        "POST",
        "/api/v1/capture",
        &key,
        Some(&episode(
            "install numpy in a fresh python 3.11 virtualenv",
            "pip install numpy==2.0.0",
            "pip",
            "ModuleNotFoundError: No module named 'numpy.core._multiarray_umath'",
        )),
    );
    assert_eq!(captured.status, 201, "{}", captured.text);
    let (other, _) = gw.customer("PRO", &["read", "write"]);

    let found = gw.call(
        "POST",
        "/api/v1/admin/search",
        &gw.admin_key,
        Some(
            &json!({"customer_id": id, "goal": "numpy install fails on python 3.11",
                     "current_state": {"python": "3.11.4"}, "k": 5}),
        ),
    );
    assert_eq!(found.status, 200, "{}", found.text);
    let first = &found.json["results"][0];
    assert_eq!(first["episode_id"], captured.json["episode_id"]);
    for component in ["similarity", "precondition", "recency", "usage"] {
        let value = first["components"][component].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&value), "{component}: {value}");
    }
    assert!(first["explanation"].is_string());
    assert_eq!(first["matched_in"], "customer");

    // Another customer's episodes are not this customer's.
    let elsewhere = gw.call(
        "POST",
        "/api/v1/admin/search",
        &gw.admin_key,
        Some(&json!({"customer_id": other, "goal": "numpy install fails on python 3.11"})),
    );
    assert_eq!(elsewhere.status, 200);
    assert_eq!(elsewhere.json["results"], json!([]));

    // Nothing counted against the customer: no search, no retrieval.
    let usage = gw.call(
        "GET",
        &format!("/api/v1/customers/{id}/usage"),
        &gw.admin_key,
        None,
    );
    assert_eq!(usage.json["months"][0]["searches"], 0, "{}", usage.text);
    let episode_id = captured.json["episode_id"].as_u64().unwrap();
    let stored = gw.call("GET", &format!("/api/v1/episodes/{episode_id}"), &key, None);
    assert_eq!(stored.json["retrievals"], 0, "{}", stored.text);

    // Audited with the acting key, without the query text.
    let audit = gw.call(
        "GET",
        &format!("/api/v1/audit?customer_id={id}&limit=5"),
        &gw.admin_key,
        None,
    );
    let entry = &audit.json["entries"][0];
    assert_eq!(entry["action"], "admin.search");
    assert_eq!(entry["target"], id.as_str());
    assert!(entry["actor"].is_string());
    assert!(!audit.text.contains("numpy"));

    // Errors: an unknown customer, a missing customer_id, a bad k.
    let unknown = gw.call(
        "POST",
        "/api/v1/admin/search",
        &gw.admin_key,
        Some(&json!({"customer_id": "cus_nope", "goal": "anything at all"})),
    );
    assert_eq!(unknown.status, 404);
    let no_customer = gw.call(
        "POST",
        "/api/v1/admin/search",
        &gw.admin_key,
        Some(&json!({"goal": "anything at all"})),
    );
    assert_eq!(no_customer.status, 422);
    assert_eq!(no_customer.field(), "customer_id");
    let bad_k = gw.call(
        "POST",
        "/api/v1/admin/search",
        &gw.admin_key,
        Some(&json!({"customer_id": id, "goal": "anything at all", "k": 0})),
    );
    assert_eq!(bad_k.status, 422);
    assert_eq!(bad_k.field(), "k");
}
