//! `cnnzoo serve`: every endpoint, every bad input, micro-batching against single requests,
//! the queue and timeout answers, readiness, and shutdown with a request in flight.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use burn::tensor::Device;
use cnnzoo::serve::{ModelSpec, Options, Server};

/// A d2l LeNet run imported from the parity fixture (real, fixed weights) in `dir/lenet`.
fn lenet_run(dir: &Path) -> PathBuf {
    let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/d2l_lenet.pth");
    let run = dir.join("lenet");
    cnnzoo::train::import_run(&weights, "d2l_lenet", None, None, &run, &Device::flex()).unwrap();
    run
}

/// A grey `w×h` PNG with a pattern chosen by `seed`.
fn png(seed: u32, w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(w, h, |x, y| {
        let v = ((x * (seed + 3) + y * (2 * seed + 1)) % 17) as f32 / 16.0;
        let blob =
            if (x as i32 - 14).pow(2) + (y as i32 - (8 + seed as i32 % 12)).pow(2) < 40 { 0.8 } else { 0.0 };
        image::Luma([((v * 0.3 + blob) * 255.0).min(255.0) as u8])
    });
    encode(image::DynamicImage::ImageLuma8(img), image::ImageFormat::Png)
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// An RGB JPEG of another size (resized and made grey by the run's transforms).
fn jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 2) as u8])
    });
    encode(image::DynamicImage::ImageRgb8(img), image::ImageFormat::Jpeg)
}

fn start(run: &Path, opts: Options) -> Server {
    let opts = Options { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..opts };
    let server =
        Server::start(vec![ModelSpec { name: "lenet".into(), run: run.to_path_buf() }], opts).unwrap();
    server.wait_ready().unwrap();
    server
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// Status and JSON body of a POST.
fn post(addr: SocketAddr, path: &str, content_type: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let mut r = agent()
        .post(&format!("http://{addr}{path}"))
        .header("content-type", content_type)
        .send(body)
        .unwrap();
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut r = agent().get(&format!("http://{addr}{path}")).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// The library's own answer for an image file: `(class, probability)` best first.
fn library_top(run: &Path, image: &Path) -> Vec<(usize, f32)> {
    let device = Device::flex();
    let loaded = cnnzoo::train::load_run(run, &device).unwrap();
    let got =
        cnnzoo::predict::predict(&loaded.config, &loaded.model, &[image.to_path_buf()], 10, &device).unwrap();
    got[0].predictions.iter().map(|p| (p.class, p.probability)).collect()
}

fn served_top(v: &serde_json::Value) -> Vec<(usize, f32)> {
    v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["class"].as_u64().unwrap() as usize, p["probability"].as_f64().unwrap() as f32))
        .collect()
}

fn assert_same(got: &[(usize, f32)], want: &[(usize, f32)], tol: f32) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for ((gc, gp), (wc, wp)) in got.iter().zip(want) {
        assert_eq!(gc, wc, "{got:?} vs {want:?}");
        assert!((gp - wp).abs() <= tol, "{got:?} vs {want:?}");
    }
}

fn multipart(boundary: &str, field: &str, filename: &str, bytes: &[u8]) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--{boundary}\r\n\
         Content-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[test]
fn every_endpoint_answers_and_predictions_match_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let run = lenet_run(dir.path());
    let server = start(&run, Options::default());
    let addr = server.addr();

    let (status, body) = get(addr, "/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ready\"") && body.contains("lenet"), "{body}");

    let (status, body) = get(addr, "/v1/models");
    assert_eq!(status, 200);
    let models: serde_json::Value = serde_json::from_str(&body).unwrap();
    let m = &models["models"][0];
    assert_eq!(m["name"], "lenet");
    assert_eq!(m["model"], "d2l_lenet");
    assert_eq!(m["input"], serde_json::json!([1, 28, 28]));
    assert_eq!(m["classes"].as_array().unwrap().len(), 10);
    assert_eq!(m["classes"][9], "ankle boot");
    let loaded = cnnzoo::train::load_run(&run, &Device::flex()).unwrap();
    assert_eq!(m["parameters"].as_u64().unwrap() as usize, cnnzoo::instrument::num_params(&loaded.model));
    assert_eq!(get(addr, "/v1/models/lenet").0, 200);

    let (status, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"file\"") && page.contains("v1/models"),
        "the page has the upload and the model list"
    );
    assert!(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere");

    // A raw PNG body, a JPEG of another size and colour, and the PNG as a multipart field: the
    // library's `predict` on the same files gives the same classes and probabilities.
    let png_bytes = png(1, 28, 28);
    let png_path = dir.path().join("a.png");
    std::fs::write(&png_path, &png_bytes).unwrap();
    let want = library_top(&run, &png_path);
    let (status, v) = post(addr, "/v1/models/lenet/predict?top_k=10", "image/png", &png_bytes);
    assert_eq!(status, 200, "{v}");
    assert_same(&served_top(&v), &want, 1e-6);
    assert_eq!(v["predictions"][0]["name"].as_str().unwrap(), m["classes"][want[0].0].as_str().unwrap());
    assert!(v["latency_ms"]["total"].as_f64().unwrap() >= v["latency_ms"]["compute"].as_f64().unwrap());
    assert_eq!(v["batch_size"], 1);

    let (status, v) = post(addr, "/v1/models/lenet/predict", "image/png", &png_bytes);
    assert_eq!(status, 200);
    assert_eq!(v["predictions"].as_array().unwrap().len(), 5, "top-5 by default");

    let jpg_path = dir.path().join("b.jpg");
    std::fs::write(&jpg_path, jpeg()).unwrap();
    let (status, v) = post(addr, "/v1/models/lenet/predict?top_k=3", "image/jpeg", &jpeg());
    assert_eq!(status, 200, "{v}");
    assert_same(&served_top(&v), &library_top(&run, &jpg_path)[..3], 1e-6);

    let body = multipart("XyZ123", "image", "a.png", &png_bytes);
    let (status, v) =
        post(addr, "/v1/models/lenet/predict?top_k=10", "multipart/form-data; boundary=XyZ123", &body);
    assert_eq!(status, 200, "{v}");
    assert_same(&served_top(&v), &want, 1e-6);

    // Explain: the PNG overlay at the model's input size, and the maps as JSON equal to the
    // library's Grad-CAM of the same prepared image.
    let mut r = agent()
        .post(&format!("http://{addr}/v1/models/lenet/explain"))
        .header("content-type", "image/png")
        .send(&png_bytes[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers().get("content-type").unwrap(), "image/png");
    assert_eq!(r.headers().get("x-cnnzoo-class").unwrap().to_str().unwrap(), want[0].0.to_string());
    let overlay = image::load_from_memory(&r.body_mut().read_to_vec().unwrap()).unwrap();
    assert_eq!((overlay.width(), overlay.height()), (28, 28));

    let (status, v) = post(addr, "/v1/models/lenet/explain?format=json&class=3", "image/png", &png_bytes);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["class"], 3);
    assert_eq!(v["name"], "dress");
    let layer = v["layer"].as_str().unwrap().to_string();
    assert_eq!(m["gradcam_layer"].as_str().unwrap(), layer);
    let device = Device::flex();
    let eval = loaded.config.transforms().unwrap().eval;
    let img = cnnzoo::data::decode::decode_bytes(&png_bytes, "a.png").unwrap();
    let (values, [c, h, w]) = eval.apply(img, &mut rand::SeedableRng::seed_from_u64(0)).unwrap();
    let x =
        burn::tensor::Tensor::<4>::from_data(burn::tensor::TensorData::new(values, [1, c, h, w]), &device);
    let cam = cnnzoo::visualize::grad_cam(&loaded.model, "d2l_lenet", x, &layer, Some(3), &device).unwrap();
    let served: Vec<f32> =
        v["gradcam"]["values"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    assert_eq!(served.len(), cam.gradcam.values.len());
    for (a, b) in served.iter().zip(&cam.gradcam.values) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }

    // Metrics count what happened, in the Prometheus text format.
    let (status, metrics) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("cnnzoo_requests_total{")
                && l.contains("endpoint=\"/v1/models/{name}/predict\"")
                && l.contains("model=\"lenet\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(line.ends_with(" 4"), "{line}");
    for name in [
        "cnnzoo_request_duration_seconds_bucket",
        "cnnzoo_batch_size_bucket",
        "cnnzoo_queue_seconds_sum",
        "cnnzoo_compute_seconds_count",
        "cnnzoo_ready 1",
        "# TYPE cnnzoo_request_duration_seconds histogram",
    ] {
        assert!(metrics.contains(name), "{name} missing from\n{metrics}");
    }
    server.shutdown().unwrap();
}

#[test]
fn bad_input_gets_a_json_4xx_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let run = lenet_run(dir.path());
    let server = start(&run, Options { max_body_bytes: 64 << 10, ..Options::default() });
    let addr = server.addr();
    let good = png(2, 28, 28);

    // A PNG claiming 50,000×50,000 (a decompression bomb): refused from its header.
    let bomb = common::png_claiming(50_000, 50_000);
    let truncated_jpeg = {
        let j = jpeg();
        j[..j.len() / 2].to_vec()
    };
    let big = vec![7u8; 100 << 10];
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "/v1/models/lenet/predict",
            "application/octet-stream",
            b"hello, not an image".to_vec(),
            400,
            "cannot be decoded",
        ),
        ("/v1/models/lenet/predict", "image/png", bomb, 400, "50000×50000"),
        ("/v1/models/lenet/predict", "image/jpeg", truncated_jpeg, 400, "the upload"),
        ("/v1/models/lenet/predict", "image/png", big, 413, "--max-body-bytes"),
        ("/v1/models/lenet/predict", "application/json", b"{}".to_vec(), 415, "not an image"),
        ("/v1/models/lenet/predict", "text/plain", good.clone(), 415, "multipart/form-data"),
        (
            "/v1/models/nope/predict",
            "image/png",
            good.clone(),
            404,
            "no model named `nope`; this server has lenet",
        ),
        (
            "/v1/models/lenet/predict",
            "multipart/form-data; boundary=abc",
            b"--abc\r\ngarbage".to_vec(),
            400,
            "multipart",
        ),
        ("/v1/models/lenet/predict", "multipart/form-data", good.clone(), 400, "multipart"),
        (
            "/v1/models/lenet/predict",
            "multipart/form-data; boundary=B",
            b"--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--B--\r\n".to_vec(),
            400,
            "no `image` field",
        ),
        ("/v1/models/lenet/predict", "image/png", Vec::new(), 400, "empty"),
        ("/v1/models/lenet/predict?top_k=0", "image/png", good.clone(), 400, "top_k"),
        ("/v1/models/lenet/predict?topk=3", "image/png", good.clone(), 400, "unknown query parameter `topk`"),
        ("/v1/models/lenet/explain?class=99", "image/png", good.clone(), 400, "out of range"),
        ("/v1/models/lenet/explain?class=cat", "image/png", good.clone(), 400, "neither a class index"),
        ("/v1/models/lenet/explain?layer=nope", "image/png", good.clone(), 400, "not a stage"),
        ("/v1/models/lenet/explain?format=gif", "image/png", good.clone(), 400, "png or json"),
        ("/v2/whatever", "image/png", good.clone(), 404, "no such endpoint"),
    ];
    for (path, content_type, body, want_status, want_text) in cases {
        let (status, v) = post(addr, path, content_type, &body);
        assert_eq!(status, want_status, "{path} {content_type}: {v}");
        assert_eq!(v["status"], want_status);
        let message = v["error"].as_str().unwrap();
        assert!(message.contains(want_text), "{path} {content_type}: {message}");
    }
    let mut r = agent().get(&format!("http://{addr}/v1/models/lenet/predict")).call().unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert!(r.body_mut().read_to_string().unwrap().contains("not allowed"));

    // Still serving, and the errors were counted.
    assert_eq!(get(addr, "/healthz").0, 200);
    let (status, v) = post(addr, "/v1/models/lenet/predict", "image/png", &good);
    assert_eq!(status, 200, "{v}");
    let metrics = get(addr, "/metrics").1;
    let errors: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("cnnzoo_errors_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(errors, 19, "{metrics}");
    server.shutdown().unwrap();
}

#[test]
fn concurrent_requests_are_batched_and_answer_as_single_ones() {
    let dir = tempfile::tempdir().unwrap();
    let run = lenet_run(dir.path());
    let images: Vec<Vec<u8>> = (0..16).map(|i| png(i, 28, 28)).collect();
    // Each image alone (no batching).
    let single = start(&run, Options { max_batch: 1, ..Options::default() });
    let alone: Vec<Vec<(usize, f32)>> = images
        .iter()
        .map(|img| {
            let (status, v) = post(single.addr(), "/v1/models/lenet/predict?top_k=10", "image/png", img);
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["batch_size"], 1);
            served_top(&v)
        })
        .collect();
    single.shutdown().unwrap();

    // All at once, against a server that batches up to 8 and waits up to 2 s for arrivals.
    let server =
        start(&run, Options { max_batch: 8, max_delay: Duration::from_secs(2), ..Options::default() });
    let addr = server.addr();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(images.len()));
    let answers: Vec<(Vec<(usize, f32)>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = images
            .iter()
            .map(|img| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    let (status, v) = post(addr, "/v1/models/lenet/predict?top_k=10", "image/png", img);
                    assert_eq!(status, 200, "{v}");
                    (served_top(&v), v["batch_size"].as_u64().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((got, _), want) in answers.iter().zip(&alone) {
        assert_same(got, want, 1e-5);
    }
    let largest = answers.iter().map(|(_, b)| *b).max().unwrap();
    assert!(largest > 1 && largest <= 8, "batch sizes {:?}", answers.iter().map(|a| a.1).collect::<Vec<_>>());

    // A lone request on an idle worker does not wait for the 2 s batching window.
    let (status, v) = post(addr, "/v1/models/lenet/predict", "image/png", &images[0]);
    assert_eq!(status, 200);
    assert_eq!(v["batch_size"], 1);
    assert!(v["latency_ms"]["queue"].as_f64().unwrap() < 1000.0, "{v}");
    server.shutdown().unwrap();
}

/// Sends a request's head and the first `sent` bytes of a `len`-byte PNG body, leaving it in
/// flight (admitted, still receiving).
fn stalled_request(addr: SocketAddr, body: &[u8], sent: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "POST /v1/models/lenet/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body[..sent]).unwrap();
    s.flush().unwrap();
    s
}

/// Waits until the server counts `n` requests in flight for `lenet` (admitted, not answered).
fn wait_in_flight(addr: SocketAddr, n: usize) {
    let want = format!("cnnzoo_in_flight_requests{{model=\"lenet\"}} {n}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !get(addr, "/metrics").1.lines().any(|l| l == want) {
        assert!(std::time::Instant::now() < deadline, "never {n} in flight");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn response_of(mut s: TcpStream) -> (u16, String) {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn a_full_queue_answers_503_and_a_slow_request_504() {
    let dir = tempfile::tempdir().unwrap();
    let run = lenet_run(dir.path());
    let good = png(3, 28, 28);

    // One request in flight is all `queue: 1` allows.
    let server = start(&run, Options { queue: 1, ..Options::default() });
    let addr = server.addr();
    let mut first = stalled_request(addr, &good, 10);
    wait_in_flight(addr, 1);
    let (status, v) = post(addr, "/v1/models/lenet/predict", "image/png", &good);
    assert_eq!(status, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("--queue"), "{v}");
    first.write_all(&good[10..]).unwrap();
    let (status, text) = response_of(first);
    assert_eq!(status, 200, "{text}");
    assert_eq!(post(addr, "/v1/models/lenet/predict", "image/png", &good).0, 200, "the place is free again");
    server.shutdown().unwrap();

    // A request not answered within the timeout (here: its body never completes) gets 504.
    let server = start(&run, Options { timeout: Duration::from_millis(300), ..Options::default() });
    let stalled = stalled_request(server.addr(), &good, 10);
    let (status, text) = response_of(stalled);
    assert_eq!(status, 504, "{text}");
    assert!(text.contains("--timeout-ms"), "{text}");
    assert_eq!(post(server.addr(), "/v1/models/lenet/predict", "image/png", &good).0, 200);
    server.shutdown().unwrap();
}

#[test]
fn a_run_that_cannot_be_loaded_is_named_and_never_ready() {
    let dir = tempfile::tempdir().unwrap();
    let run = lenet_run(dir.path());
    let weights = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "mpk" || e == "bpk"))
        .unwrap();
    std::fs::write(&weights, b"not weights").unwrap();
    let opts = Options { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..Options::default() };
    let server = Server::start(vec![ModelSpec { name: "lenet".into(), run: run.clone() }], opts).unwrap();
    let err = server.wait_ready().unwrap_err().to_string();
    assert!(err.contains(&weights.display().to_string()), "{err}");
    assert!(server.wait().is_err());

    // Not a run directory at all, two models of one name, bad names: refused before listening.
    let missing = Server::start(
        vec![ModelSpec { name: "x".into(), run: dir.path().join("missing") }],
        Options { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..Options::default() },
    );
    assert!(missing.is_err());
    let twice = Server::start(
        vec![
            ModelSpec { name: "a".into(), run: run.clone() },
            ModelSpec { name: "a".into(), run: run.clone() },
        ],
        Options { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..Options::default() },
    );
    assert!(twice.err().unwrap().to_string().contains("two models are named `a`"));
    assert!(ModelSpec::parse("a b=runs/x").unwrap_err().to_string().contains("a name is letters"));
    assert_eq!(
        ModelSpec::parse("fast=runs/x").unwrap(),
        ModelSpec { name: "fast".into(), run: "runs/x".into() }
    );
}

#[test]
fn sigterm_finishes_the_request_in_flight_and_refuses_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let run = lenet_run(dir.path());
    let good = png(4, 28, 28);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
        .args(["serve", &format!("lenet={}", run.display()), "--addr", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    let mut addr = None;
    while !log.contains("ready;") {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() == 0 {
            panic!("serve stopped: {log}");
        }
        if let Some(rest) = line.strip_prefix("listening on http://") {
            addr = rest.split('/').next().and_then(|a| a.parse::<SocketAddr>().ok());
        }
        log.push_str(&line);
    }
    let addr = addr.unwrap_or_else(|| panic!("no address in {log}"));
    assert_eq!(post(addr, "/v1/models/lenet/predict", "image/png", &good).0, 200);

    let mut in_flight = stalled_request(addr, &good, 10);
    wait_in_flight(addr, 1);
    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    // New connections are refused once the server drains …
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_ok() {
        assert!(std::time::Instant::now() < deadline, "still accepting connections after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    // … and the request in flight is answered.
    in_flight.write_all(&good[10..]).unwrap();
    let (status, text) = response_of(in_flight);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"predictions\""), "{text}");
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{log}{rest}");
    assert!(rest.contains("stopped"), "{rest}");
}

#[test]
fn serve_flags_and_run_dirs_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![dir.path().join("missing").display().to_string()], "missing"),
        (vec![dir.path().display().to_string(), "--max-batch".into(), "0".into()], "--max-batch"),
        (vec!["x".into(), "--addr".into(), "localhost".into()], "--addr"),
    ];
    for (args, want) in cases {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cnnzoo"))
            .arg("serve")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
