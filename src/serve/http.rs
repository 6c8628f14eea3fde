//! Routes, request parsing and JSON errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, MatchedPath, Path, Request, State as AxState};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::batcher::{Answer, Done, Work};
use super::models::{Prepared, Served};
use super::{Readiness, State};
use crate::error::Error;

type Shared = Arc<State>;

/// The web page (plain HTML and JavaScript, no external resources).
const PAGE: &str = include_str!("page.html");

pub fn router(state: Shared) -> Router {
    let limit = state.opts.max_body_bytes;
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/models", get(models))
        .route("/v1/models/{name}", get(model))
        .route("/v1/models/{name}/predict", post(predict))
        .route("/v1/models/{name}/explain", post(explain))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

/// An error answer: `{"error": message, "status": code}`.
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "status": self.status.as_u16() });
        (self.status, axum::Json(body)).into_response()
    }
}

/// Counts every answer by route, model and status, with its latency.
async fn record(AxState(state): AxState<Shared>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let endpoint = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    // Only served names become labels (unknown names would grow the metrics without bound).
    let model = req
        .uri()
        .path()
        .strip_prefix("/v1/models/")
        .and_then(|rest| rest.split('/').next())
        .filter(|name| state.model(name).is_some())
        .unwrap_or("")
        .to_string();
    let response = next.run(req).await;
    state.metrics.request(&endpoint, &model, response.status().as_u16(), started.elapsed());
    response
}

async fn page() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such endpoint: {} {}", req.method(), req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

async fn healthz(AxState(state): AxState<Shared>) -> Response {
    let (status, body) = match state.readiness() {
        Readiness::Ready if !state.draining.load(Ordering::SeqCst) => {
            let names: Vec<&str> =
                state.models.get().map(|m| m.iter().map(|m| m.name.as_str()).collect()).unwrap_or_default();
            (StatusCode::OK, json!({ "status": "ready", "models": names }))
        }
        Readiness::Loading => (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "loading" })),
        Readiness::Failed(e) => (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "failed", "error": e })),
        Readiness::Ready | Readiness::Draining => {
            (StatusCode::SERVICE_UNAVAILABLE, json!({ "status": "draining" }))
        }
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(AxState(state): AxState<Shared>) -> Response {
    if let Some(models) = state.models.get() {
        for m in models {
            state.metrics.in_flight.with_label_values(&[&m.name]).set(m.queue.in_flight() as i64);
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render())
        .into_response()
}

fn served_models(state: &State) -> Result<&[Arc<Served>], ApiError> {
    match state.readiness() {
        Readiness::Ready => Ok(state.models.get().map(Vec::as_slice).unwrap_or_default()),
        Readiness::Draining => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"))
        }
        _ => {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the models are still loading; see /healthz"))
        }
    }
}

fn find<'a>(state: &'a State, name: &str) -> Result<&'a Arc<Served>, ApiError> {
    let models = served_models(state)?;
    models.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no model named `{name}`; this server has {}", names.join(", ")),
        )
    })
}

async fn models(AxState(state): AxState<Shared>) -> Result<Response, ApiError> {
    let infos: Vec<_> = served_models(&state)?.iter().map(|m| m.info()).collect();
    Ok(axum::Json(json!({ "models": infos })).into_response())
}

async fn model(AxState(state): AxState<Shared>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(axum::Json(find(&state, &name)?.info()).into_response())
}

type Query = HashMap<String, String>;

fn query(req: &Request) -> Result<Query, ApiError> {
    axum::extract::Query::<Query>::try_from_uri(req.uri()).map(|q| q.0).map_err(|_| {
        ApiError::bad_request(format!("cannot parse the query string `{}`", req.uri().query().unwrap_or("")))
    })
}

/// The served model `name` and the request's query, which may hold only `allowed` keys.
fn model_and_query(
    state: &State,
    name: &str,
    req: &Request,
    allowed: &[&str],
) -> Result<(Arc<Served>, Query), ApiError> {
    let served = find(state, name)?.clone();
    let q = query(req)?;
    only_keys(&q, allowed)?;
    Ok((served, q))
}

fn only_keys(q: &Query, allowed: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown query parameter `{k}`; this endpoint takes {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The uploaded image's bytes: the raw body (`image/*`, `application/octet-stream` or no
/// content type) or the `image` field (else the first file) of a `multipart/form-data` body.
async fn upload(state: &State, req: Request) -> Result<Bytes, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?").to_ascii_lowercase())
        .unwrap_or_default();
    let limit = state.opts.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than this server accepts ({limit} bytes, --max-body-bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mime = content_type.split(';').next().unwrap_or("").trim().to_string();
    let bytes = if mime == "multipart/form-data" {
        let mut form = axum::extract::Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::new(e.status(), format!("malformed multipart body: {}", e.body_text())))?;
        let mut found = None;
        loop {
            let field = form.next_field().await.map_err(|e| multipart_error(&e, &too_large))?;
            let Some(field) = field else { break };
            let is_image = field.name() == Some("image") || field.file_name().is_some();
            if is_image {
                found = Some(field.bytes().await.map_err(|e| multipart_error(&e, &too_large))?);
                break;
            }
        }
        found.ok_or_else(|| {
            ApiError::bad_request(
                "the multipart body has no `image` field and no file; send the image as `image`",
            )
        })?
    } else if mime.is_empty() || mime == "application/octet-stream" || mime.starts_with("image/") {
        Bytes::from_request(req, &()).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::new(e.status(), e.body_text())
            }
        })?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type `{content_type}` is not an image; send the image as the body (image/png, \
                 image/jpeg or application/octet-stream) or as the `image` field of multipart/form-data"
            ),
        ));
    };
    if bytes.is_empty() {
        return Err(ApiError::bad_request("the request has no image: its body is empty"));
    }
    Ok(bytes)
}

fn multipart_error(
    e: &axum::extract::multipart::MultipartError,
    too_large: &dyn Fn() -> ApiError,
) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, format!("malformed multipart body: {}", e.body_text()))
    }
}

/// Decodes and prepares an upload on the blocking pool, at most `--decoders` at a time.
async fn prepare(state: &State, served: &Arc<Served>, bytes: Bytes) -> Result<Prepared, ApiError> {
    let _permit = state
        .decode
        .acquire()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down"))?;
    let served = served.clone();
    let prepared = tokio::task::spawn_blocking(move || served.prepare(&bytes)).await.map_err(|_| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "decoding the image failed unexpectedly")
    })?;
    prepared.map_err(|e| ApiError::bad_request(user_message(&e)))
}

/// An error's text without the "invalid …:" frame when it names the upload itself.
fn user_message(e: &Error) -> String {
    match e {
        Error::Invalid { what, message } if what == "the upload" => format!("the upload {message}"),
        other => other.to_string(),
    }
}

/// Admits, prepares, queues and awaits one request, within the timeout.
async fn run_job(
    state: &State,
    served: &Arc<Served>,
    req: Request,
    work: impl FnOnce(Prepared) -> Work,
) -> Result<(Done, Duration), ApiError> {
    let started = Instant::now();
    let Some(mut ticket) = served.queue.admit(state.opts.queue) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "`{}` has {} requests in flight, as many as --queue allows; retry later",
                served.name, state.opts.queue
            ),
        ));
    };
    let timeout = state.opts.timeout;
    let job = async {
        let bytes = upload(state, req).await?;
        let prepared = prepare(state, served, bytes).await?;
        let rx = ticket.submit(work(prepared));
        match rx.await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => Err(worker_error(e)),
            Err(_) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")),
        }
    };
    let done = tokio::time::timeout(timeout, job).await.map_err(|_| {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("no answer within {} ms (--timeout-ms)", timeout.as_millis()),
        )
    })??;
    Ok((done, started.elapsed()))
}

/// A worker's error: the caller's (a layer or class the model does not have) is a 400, anything
/// else a 500.
fn worker_error(e: Error) -> ApiError {
    match e {
        Error::Invalid { what, message } if what == "--layer" || what == "--class" => {
            ApiError::bad_request(format!("invalid {}: {message}", what.trim_start_matches('-')))
        }
        other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

async fn predict(
    AxState(state): AxState<Shared>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (served, q) = model_and_query(&state, &name, &req, &["top_k"])?;
    let k =
        match q.get("top_k") {
            None => 5,
            Some(v) => v.parse::<usize>().ok().filter(|&k| k >= 1).ok_or_else(|| {
                ApiError::bad_request(format!("top_k must be a whole number ≥ 1, not `{v}`"))
            })?,
        };
    let (done, total) = run_job(&state, &served, req, |p| Work::Predict { values: p.values }).await?;
    let Answer::Probabilities(probs) = done.answer else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the worker answered the wrong kind"));
    };
    let predictions = crate::predict::top_k(&probs, &served.classes, k);
    Ok(axum::Json(json!({
        "model": served.name,
        "predictions": predictions,
        "batch_size": done.batch,
        "latency_ms": { "total": ms(total), "queue": ms(done.queued), "compute": ms(done.compute) },
    }))
    .into_response())
}

async fn explain(
    AxState(state): AxState<Shared>,
    Path(name): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let (served, q) = model_and_query(&state, &name, &req, &["class", "layer", "format"])?;
    let class = match q.get("class") {
        None => None,
        Some(c) => Some(served.class(c).map_err(|e| ApiError::bad_request(e.to_string()))?),
    };
    let layer = q.get("layer").cloned().unwrap_or_else(|| served.layer.clone());
    let json_wanted = match q.get("format").map(String::as_str) {
        None => req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/json") && !a.contains("image/png")),
        Some("json") => true,
        Some("png") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!("format must be png or json, not `{other}`")));
        }
    };
    let work = |p: Prepared| Work::Explain { values: p.values, image: p.image, class, layer };
    let (done, total) = run_job(&state, &served, req, work).await?;
    let Answer::Explanation { cam, png } = done.answer else {
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the worker answered the wrong kind"));
    };
    let class_name = served.classes.get(cam.class).cloned().unwrap_or_else(|| format!("class {}", cam.class));
    if json_wanted {
        return Ok(axum::Json(json!({
            "model": served.name,
            "class": cam.class,
            "name": class_name,
            "probability": cam.probability,
            "layer": cam.layer,
            "activation": cam.activation,
            "gradcam": cam.gradcam,
            "gradcam_pp": cam.gradcam_pp,
            "latency_ms": { "total": ms(total), "queue": ms(done.queued), "compute": ms(done.compute) },
        }))
        .into_response());
    }
    let mut response = Response::new(Body::from(png));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    let header_value = |s: String| HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static("?"));
    headers.insert("x-cnnzoo-class", header_value(cam.class.to_string()));
    headers.insert("x-cnnzoo-class-name", header_value(class_name.escape_default().to_string()));
    headers.insert("x-cnnzoo-probability", header_value(format!("{:.6}", cam.probability)));
    headers.insert("x-cnnzoo-layer", header_value(cam.layer.clone()));
    headers.insert("x-cnnzoo-latency-ms", header_value(format!("{:.3}", ms(total))));
    Ok(response)
}
