//! The OpenAPI 3.1 description of the REST API, generated from the route
//! handlers' `#[utoipa::path]` annotations and the request and response
//! types, served at `/openapi.json`, with the interactive Swagger UI at
//! `/docs` (its files are compiled into the binary: no CDN, no network).

use axum::Router;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ErrorBody;
use crate::state::AppState;

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "KyroDB gateway",
        description = "Failure memory for AI coding tools: record failure episodes, and before acting ask whether something similar failed before. Every error is `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::routes::capture_episode,
        crate::routes::list_episodes,
        crate::routes::get_episode,
        crate::routes::delete_episode,
        crate::routes::search,
        crate::routes::reflect,
        crate::routes::validate_fix,
        crate::routes::skills,
        crate::routes::embeddings,
        crate::routes::create_customer,
        crate::routes::get_customer,
        crate::routes::update_customer,
        crate::routes::suspend_customer,
        crate::routes::activate_customer,
        crate::routes::create_key,
        crate::routes::list_keys,
        crate::routes::revoke_key,
        crate::routes::customer_usage,
        crate::routes::audit_log,
        crate::admin_console::customers,
        crate::admin_console::engine_stats,
        crate::admin_console::latency,
        crate::admin_console::search,
        crate::routes::health,
        crate::routes::liveness,
        crate::routes::readiness,
        crate::routes::metrics_text,
    ),
    components(schemas(ErrorBody)),
    modifiers(&KeySchemes),
    tags(
        (name = "episodes", description = "Capture, read, erase episodes; fix feedback"),
        (name = "retrieval", description = "Search, the pre-action gate, skills"),
        (name = "embeddings", description = "The server's text embedding model"),
        (name = "admin", description = "Customers, keys, usage, audit (admin scope)"),
        (name = "service", description = "Health and metrics (no key)"),
    )
)]
pub struct ApiDoc;

/// The two ways to send a key: `X-API-Key` or `Authorization: Bearer`.
struct KeySchemes;

impl Modify for KeySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An `em_live_…` key",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The same `em_live_…` key as a bearer token"))
                    .build(),
            ),
        );
    }
}

/// `/openapi.json` and the Swagger UI at `/docs`.
pub fn router() -> Router<AppState> {
    SwaggerUi::new("/docs")
        .url("/openapi.json", ApiDoc::openapi())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_error_is_described() {
        let doc = ApiDoc::openapi();
        let json = serde_json::to_value(&doc).expect("the document serialises");
        assert!(json["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")));
        let paths = json["paths"].as_object().expect("paths");
        for path in [
            "/api/v1/capture",
            "/api/v1/episodes",
            "/api/v1/episodes/{id}",
            "/api/v1/search",
            "/api/v1/reflect",
            "/api/v1/validate_fix",
            "/api/v1/skills",
            "/api/v1/embeddings",
            "/api/v1/customers",
            "/api/v1/customers/{id}",
            "/api/v1/customers/{id}/suspend",
            "/api/v1/customers/{id}/activate",
            "/api/v1/customers/{id}/keys",
            "/api/v1/customers/{id}/usage",
            "/api/v1/keys/{key_id}",
            "/api/v1/audit",
            "/api/v1/admin/customers",
            "/api/v1/admin/engine",
            "/api/v1/admin/latency",
            "/api/v1/admin/search",
        ] {
            let operations = paths[path].as_object().unwrap_or_else(|| panic!("{path}"));
            for (method, operation) in operations {
                let responses = operation["responses"].as_object().expect("responses");
                for status in ["401", "403", "429", "503"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} does not document {status}"
                    );
                }
                assert!(
                    !operation["security"]
                        .as_array()
                        .expect("security")
                        .is_empty(),
                    "{method} {path} does not say how to authenticate"
                );
            }
        }
        let schemas = json["components"]["schemas"].as_object().expect("schemas");
        for schema in [
            "CaptureRequest",
            "SearchRequest",
            "ReflectRequest",
            "ReflectResponse",
            "ErrorBody",
        ] {
            assert!(schemas.contains_key(schema), "no schema {schema}");
        }
        let capture = &schemas["CaptureRequest"]["required"];
        for field in [
            "goal",
            "tool_chain",
            "actions_taken",
            "error_trace",
            "error_class",
        ] {
            assert!(
                capture
                    .as_array()
                    .is_some_and(|r| r.iter().any(|f| f == field)),
                "CaptureRequest does not require {field}"
            );
        }
    }
}
