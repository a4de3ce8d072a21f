//! `/dashboard`: the React single-page app from `dashboard/`, embedded in the binary.
//!
//! `npm run build` in `dashboard/` writes `dashboard/dist`, which [`Assets`] embeds at
//! compile time (`build.rs` creates the folder empty when it is missing, so a fresh clone
//! compiles without npm). Paths that name no asset are the app's own client-side routes and
//! get `index.html`; without a built dashboard every page says how to build it. The
//! `dashboard` setting turns the whole surface off (404).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::state::App;

/// The built dashboard, `dashboard/dist`, embedded even in debug builds (`debug-embed`), so
/// tests exercise exactly what ships.
#[derive(rust_embed::Embed)]
#[folder = "../../dashboard/dist/"]
struct Assets;

/// The page served when the binary was built without `dashboard/dist`.
const NOT_BUILT_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Routerly dashboard not built</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}code,pre{background:#8882;padding:.1rem .3rem;border-radius:4px}pre{padding:.75rem;overflow-x:auto}</style>
</head><body>
<h1>The dashboard was not built into this binary</h1>
<p>This <code>routerly</code> was compiled before <code>dashboard/dist</code> existed. The API under <code>/api</code> and the proxy under <code>/v1</code> work as usual.</p>
<p>To get the dashboard, build it and then the binary (the README's <code>./scripts/run</code> does both):</p>
<pre>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd ..
cargo build --release --bin routerly</pre>
</body></html>
"#;

/// `GET /dashboard`: the app's entry page.
pub async fn index(State(app): State<App>) -> Response {
    serve(&app, "")
}

/// `GET /dashboard/{*path}`: an asset, or the entry page for a client-side route.
pub async fn asset(State(app): State<App>, Path(path): Path<String>) -> Response {
    serve(&app, &path)
}

fn serve(app: &App, path: &str) -> Response {
    if !app.store.snapshot().settings.dashboard {
        return (
            StatusCode::NOT_FOUND,
            "the dashboard is turned off (setting `dashboard`)\n",
        )
            .into_response();
    }
    let path = path.trim_start_matches('/');
    if !path.is_empty()
        && let Some(file) = Assets::get(path)
    {
        // Vite puts a content hash in every name under assets/, so those never change.
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return with_headers(file.data.into_owned(), content_type(path), cache);
    }
    // A missing file (a name with an extension) is a 404, not the app: a stale page asking
    // for an old script should fail loudly rather than parse HTML as JavaScript.
    let last_segment = path.rsplit('/').next().unwrap_or_default();
    if last_segment.contains('.') {
        return (
            StatusCode::NOT_FOUND,
            format!("no dashboard file `{path}`\n"),
        )
            .into_response();
    }
    match Assets::get("index.html") {
        Some(file) => with_headers(
            file.data.into_owned(),
            "text/html; charset=utf-8",
            "no-cache",
        ),
        None => with_headers(
            NOT_BUILT_PAGE.as_bytes().to_vec(),
            "text/html; charset=utf-8",
            "no-cache",
        ),
    }
}

fn with_headers(body: Vec<u8>, content_type: &'static str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Everything the app loads comes from this origin; inline styles are React's `style`.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        ),
    );
    response
}

/// The content type of a built file, by its extension (Vite emits only these kinds).
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, extension)| extension) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn built_files_get_their_content_types() {
        assert_eq!(
            content_type("assets/index-abc.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type("assets/index-abc.css"),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
