//! The `cnnzoo serve` web page in a real browser: Debian's chromium driven through
//! chromedriver (WebDriver, with the fantoccini crate). Upload an image, wait for the
//! prediction and the Grad-CAM overlay, check the rendered class against the library's own
//! prediction, save a screenshot under the test's output directory.
//!
//! Needs `chromium` and `chromedriver` (`apt-get install chromium chromium-driver`); without
//! them the test says so and passes, except under CI (`CI` set), where it fails.
//!
//! `CNNZOO_BROWSER_RUN=RUN_DIR CNNZOO_BROWSER_IMAGE=FILE` serve another run and upload another
//! image (how the README's screenshot was taken, with the main job's run).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use cnnzoo::serve::{ModelSpec, Options, Server};
use fantoccini::{ClientBuilder, Locator};

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).flat_map(|dir| names.iter().map(move |n| dir.join(n))).find(|p| p.is_file())
}

/// chromedriver on a free port, killed when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_driver(chromedriver: &Path) -> Driver {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver(child, port)
}

#[test]
fn the_page_classifies_an_uploaded_image_and_shows_the_grad_cam() {
    let (Some(chromium), Some(chromedriver)) =
        (find(&["chromium", "chromium-browser", "google-chrome"]), find(&["chromedriver"]))
    else {
        let message =
            "the browser test needs chromium and chromedriver (apt-get install chromium chromium-driver)";
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("skipped: {message}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = match std::env::var_os("CNNZOO_BROWSER_RUN") {
        Some(run) => PathBuf::from(run),
        None => {
            let weights = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/d2l_lenet.pth");
            let run = dir.path().join("lenet");
            cnnzoo::train::import_run(&weights, "d2l_lenet", None, None, &run, &Device::flex()).unwrap();
            run
        }
    };
    let image_path = match std::env::var_os("CNNZOO_BROWSER_IMAGE") {
        Some(image) => PathBuf::from(image),
        None => {
            // A 28×28 grey image: a bright blob on a dark ground.
            let img = image::GrayImage::from_fn(28, 28, |x, y| {
                let d = (x as i32 - 14).pow(2) + (y as i32 - 12).pow(2);
                image::Luma([if d < 60 { 230 } else { (x * 3) as u8 }])
            });
            let path = dir.path().join("blob.png");
            img.save(&path).unwrap();
            path
        }
    };
    let device = Device::flex();
    let loaded = cnnzoo::train::load_run(&run, &device).unwrap();
    let want = cnnzoo::predict::predict(
        &loaded.config,
        &loaded.model,
        std::slice::from_ref(&image_path),
        5,
        &device,
    )
    .unwrap();
    let want_class = want[0].predictions[0].name.clone();

    let opts = Options { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..Options::default() };
    let server = Server::start(vec![ModelSpec { name: "lenet".into(), run: run.clone() }], opts).unwrap();
    server.wait_ready().unwrap();
    let url = format!("http://{}/", server.addr());
    let driver = start_driver(&chromedriver);
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out_dir).unwrap();
    let screenshot = out_dir.join("serve-page.png");

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (rendered, bars, cam_width) = runtime.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1100,720"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.1))
            .await
            .expect("a WebDriver session with chromium");
        client.goto(&url).await.unwrap();
        let wait = Duration::from_secs(60);
        client.wait().at_most(wait).for_element(Locator::Css("body[data-ready='true']")).await.unwrap();
        let input = client.find(Locator::Id("file")).await.unwrap();
        input.send_keys(&image_path.display().to_string()).await.unwrap();
        client.wait().at_most(wait).for_element(Locator::Css("body[data-done='true']")).await.unwrap();
        let rendered = client.find(Locator::Id("top1")).await.unwrap().attr("data-class").await.unwrap();
        let bars = client.find_all(Locator::Css("#bars .bar")).await.unwrap().len();
        let cam_width = client
            .execute("return document.getElementById('cam').naturalWidth;", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(0);
        let png = client.screenshot().await.unwrap();
        std::fs::write(&screenshot, png).unwrap();
        client.close().await.unwrap();
        (rendered, bars, cam_width)
    });
    assert_eq!(rendered.as_deref(), Some(want_class.as_str()), "the page shows the library's prediction");
    assert_eq!(bars, 5, "top-5 bars");
    assert_eq!(
        cam_width as usize, loaded.config.input[2],
        "the Grad-CAM overlay loaded, at the model's input size"
    );
    let shot = image::open(&screenshot).unwrap();
    assert!(shot.width() >= 800 && shot.height() >= 500, "screenshot {}×{}", shot.width(), shot.height());
    eprintln!("screenshot: {}", screenshot.display());
    server.shutdown().unwrap();
}
