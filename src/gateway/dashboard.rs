//! `GET /_meridian/`: the dashboard, served by the worker itself. The page and its assets hold no data: every figure
//! is fetched by the page from the admin endpoints with the admin key the user types, from this origin only (the
//! content security policy allows no other).

use super::*;

const INDEX: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");
// uPlot (MIT, npm `uplot`, pinned in package.json): the charts.
const UPLOT_JS: &str = include_str!("../../node_modules/uplot/dist/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../node_modules/uplot/dist/uPlot.min.css");

/// Scripts and styles from this origin only, data fetched from this origin only, no frames, no forms posted elsewhere.
/// uPlot sizes its elements with inline styles, hence `'unsafe-inline'` for styles (never for scripts).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

/// The page (`/_meridian/`) or one of its assets (`/_meridian/assets/<name>`).
pub(super) fn serve(path: &str) -> Result<Response, GatewayError> {
    let (body, content_type) = match path.strip_prefix("/_meridian/assets/") {
        None => (INDEX, "text/html; charset=utf-8"),
        Some("app.js") => (APP_JS, "text/javascript; charset=utf-8"),
        Some("app.css") => (APP_CSS, "text/css; charset=utf-8"),
        Some("uplot.js") => (UPLOT_JS, "text/javascript; charset=utf-8"),
        Some("uplot.css") => (UPLOT_CSS, "text/css; charset=utf-8"),
        Some(other) => {
            return Err(GatewayError::new(
                ErrorCode::NotFound,
                format!("no dashboard asset named `{other}`"),
            ))
        }
    };
    let mut headers = Headers::new();
    headers.insert("content-type", content_type);
    headers.insert("content-security-policy", POLICY);
    headers.insert("x-content-type-options", "nosniff");
    headers.insert("referrer-policy", "no-referrer");
    headers.insert("x-frame-options", "DENY");
    // The page changes with a deployment: revalidated, never kept by a shared cache.
    headers.insert("cache-control", "private, max-age=60");
    Ok(Response {
        status: 200,
        headers,
        body: Body::Bytes(body.as_bytes().to_vec()),
    })
}
