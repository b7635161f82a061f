//! The web console at `/console`: static files (HTML, CSS, one JavaScript
//! module) compiled into the binary with `include_str!`, so the server needs
//! nothing on disk and the build needs no network or Node.
//!
//! The files are public (no token): the page asks its user for an app token
//! (and the admin token for the call history), keeps it in the tab's
//! `sessionStorage`, and calls the public API and the event stream with it
//! like any other application. This module only serves bytes; it has no
//! access to the switch.

use crate::error::ApiError;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file: its name under `/console/`, media type and bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static str,
}

/// Every file of the console. `index.html` is also served at `/console/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        media_type: "text/html; charset=utf-8",
        body: include_str!("../../console/index.html"),
    },
    Asset {
        name: "console.css",
        media_type: "text/css; charset=utf-8",
        body: include_str!("../../console/console.css"),
    },
    Asset {
        name: "console.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/console.js"),
    },
    Asset {
        name: "ops.js",
        media_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/ops.js"),
    },
    Asset {
        name: "favicon.svg",
        media_type: "image/svg+xml",
        body: include_str!("../../console/favicon.svg"),
    },
];

/// The page may load only its own files and talk only to this server (the
/// API over `fetch`, the event stream over a same-origin WebSocket).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The routes of the console, merged into the API's router (they use no
/// state, so any state type fits).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route("/console/", get(|| async { asset("index.html") }))
        .route(
            "/console/{file}",
            get(|Path(file): Path<String>| async move { asset(&file) }),
        )
}

/// The response for one file name, or `404` in the API's error shape.
fn asset(name: &str) -> Response {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "operationunavail",
            "the console has no such file",
        )
        .into_response();
    };
    let mut resp = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(a.media_type))],
        a.body,
    )
        .into_response();
    let h = resp.headers_mut();
    // The files change with the binary: always revalidate.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Serve the console's routes alone on a loopback port.
    async fn serve() -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = routes::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn serves_the_page_and_its_files_without_a_token() {
        let addr = serve().await;
        let c = client();
        let r = c
            .get(format!("http://{addr}/console"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 308);
        assert_eq!(r.headers()["location"], "/console/");
        let r = c
            .get(format!("http://{addr}/console/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert!(
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("connect-src 'self'")
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let page = r.text().await.unwrap();
        assert!(page.contains("<script type=\"module\" src=\"console.js\">"));
        for a in ASSETS {
            let r = c
                .get(format!("http://{addr}/console/{}", a.name))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", a.name);
            assert_eq!(r.headers()["content-type"], a.media_type, "{}", a.name);
            assert_eq!(r.text().await.unwrap(), a.body, "{}", a.name);
        }
    }

    #[tokio::test]
    async fn unknown_files_are_404_in_the_api_shape() {
        let addr = serve().await;
        let c = client();
        for path in ["nope.js", "..%2Fsrc%2Fmain.rs", "index.html.bak"] {
            let r = c
                .get(format!("http://{addr}/console/{path}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404, "{path}");
            let v: serde_json::Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"], "operationunavail", "{path}");
        }
    }

    #[test]
    fn the_page_references_only_embedded_files() {
        let page = ASSETS[0].body;
        for reference in ["console.css", "console.js", "favicon.svg"] {
            assert!(page.contains(reference), "{reference}");
        }
        // console.js imports ops.js by a relative path the router serves.
        let js = ASSETS.iter().find(|a| a.name == "console.js").unwrap();
        assert!(js.body.contains("from \"./ops.js\""));
    }
}
