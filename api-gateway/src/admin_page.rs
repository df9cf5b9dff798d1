//! The admin web page at `/admin`: one static HTML page, its script and its
//! style sheet, embedded in the binary (no CDN, nothing fetched at run
//! time), plus the JSON routes it reads ([`crate::admin_console`]).
//!
//! Security model: the page itself holds no secret and is served to anyone;
//! the operator types the admin key, the script keeps it in
//! `sessionStorage` (gone when the tab closes) and sends it as `X-API-Key`
//! on each call. Authentication is by header only (no cookies), so another
//! site's forms or scripts cannot act with the operator's credentials. The
//! page routes carry a strict Content-Security-Policy (scripts and styles
//! only from this origin, no inline script, connections only to this
//! origin, no form submission, no framing), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.

use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("../assets/admin/index.html");
const APP_JS: &str = include_str!("../assets/admin/app.js");
const APP_CSS: &str = include_str!("../assets/admin/app.css");

/// The page's Content-Security-Policy.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page, its assets and the JSON routes it reads.
pub fn router() -> Router<AppState> {
    let page = Router::new()
        .route(
            "/admin",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/admin/",
            get(|| asset("text/html; charset=utf-8", INDEX_HTML)),
        )
        .route(
            "/admin/app.js",
            get(|| asset("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/admin/app.css",
            get(|| asset("text/css; charset=utf-8", APP_CSS)),
        )
        .layer(middleware::map_response(security_headers));
    page.merge(crate::admin_console::routes())
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
