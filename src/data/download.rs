//! Downloads the official files into the user cache, verified by checksum, written atomically
//! (single files: temp file then rename; archives: unpacked into a temp folder, then renamed).
//!
//! HTTP and HTTPS go through `ureq` (rustls), which follows redirects. Nothing in the test suite
//! depends on the network.

use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use sha2::Digest;

use super::{DatasetKind, FILES, idx};
use crate::error::{Error, Result};

/// Official Fashion-MNIST host (zalandoresearch/fashion-mnist README).
pub const FASHION_MNIST_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";
/// MNIST, from the mirror torchvision downloads it from first (yann.lecun.com no longer serves
/// it reliably); the files are checked against their published MD5s.
pub const MNIST_URL: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";

/// SHA-256 of each *uncompressed* official Fashion-MNIST file, in [`FILES`] order. (Debian
/// re-compresses the files, so the `.gz` digests differ while the content is the same.)
pub const FASHION_MNIST_SHA256: [&str; 4] = [
    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
];

/// MD5 of each official MNIST `.gz` file, in [`FILES`] order (as torchvision checks them).
pub const MNIST_GZ_MD5: [&str; 4] = [
    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "d53e105ee54ea40749a09fcbcd1e9432",
    "9fb629c4189551a2d022fa330f9573f3",
    "ec29112dd5afa0611ce80d1b7f02629c",
];

/// Checks a downloaded or local official file against the known digest for `FILES[i]`.
pub fn verify(kind: DatasetKind, i: usize, gz: &[u8], path: &Path) -> Result<()> {
    match kind {
        DatasetKind::FashionMnist => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(gz)
                .read_to_end(&mut out)
                .map_err(|e| Error::bad_file(path, format!("is not a valid gzip stream: {e}")))?;
            let got = idx::hex(&sha2::Sha256::digest(&out));
            expect(path, "SHA-256 of the content", &got, FASHION_MNIST_SHA256[i])
        }
        DatasetKind::Mnist => {
            let got = idx::hex(&Md5::digest(gz));
            expect(path, "MD5", &got, MNIST_GZ_MD5[i])
        }
    }
}

fn expect(path: &Path, what: &str, got: &str, want: &str) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::bad_file(path, format!("{what} is {got}, expected the official {want}")))
    }
}

/// Downloads the four files of `kind` into `dir` (each verified, then renamed into place).
pub fn fetch_all(kind: DatasetKind, dir: &Path) -> Result<()> {
    let base = match kind {
        DatasetKind::FashionMnist => FASHION_MNIST_URL,
        DatasetKind::Mnist => MNIST_URL,
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    for (i, name) in FILES.iter().enumerate() {
        let target = dir.join(format!("{name}.gz"));
        if target.is_file() {
            continue;
        }
        let url = format!("{base}{name}.gz");
        eprintln!("downloading {url}");
        let body = http_get(&url)?;
        verify(kind, i, &body, Path::new(&url))?;
        crate::fsutil::write_atomic(&target, &body)?;
    }
    Ok(())
}

/// Downloads the `.tar.gz` at `url` and installs it with [`install_archive`].
pub fn fetch_archive(url: &str, md5: &str, subdir: &str, required: &[&str], dest: &Path) -> Result<PathBuf> {
    eprintln!("downloading {url}");
    let body = http_get(url)?;
    install_archive(&body, md5, Path::new(url), subdir, required, dest)
}

/// Checks that the `.tar.gz` `archive` (named `what` in errors) has MD5 `md5`, unpacks the regular
/// files of its folder `subdir` (and nothing else: no other paths, links or nested folders) into a
/// temp folder in `dest`, checks that every `required` file is there, and renames the folder to
/// `dest/subdir` (replacing an incomplete one). Returns `dest/subdir`.
pub fn install_archive(
    archive: &[u8],
    md5: &str,
    what: &Path,
    subdir: &str,
    required: &[&str],
    dest: &Path,
) -> Result<PathBuf> {
    expect(what, "MD5", &idx::hex(&Md5::digest(archive)), md5)?;
    std::fs::create_dir_all(dest).map_err(|e| Error::io("create", dest, e))?;
    let tmp = dest.join(format!(".{subdir}.unpack-{}", std::process::id()));
    let result = unpack(archive, what, subdir, required, &tmp).and_then(|()| {
        let target = dest.join(subdir);
        if target.exists() {
            let old = dest.join(format!(".{subdir}.old-{}", std::process::id()));
            std::fs::rename(&target, &old).map_err(|e| Error::io("move aside", &target, e))?;
            let _ = std::fs::remove_dir_all(&old);
        }
        let unpacked = tmp.join(subdir);
        std::fs::rename(&unpacked, &target).map_err(|e| Error::io("rename into", &target, e))?;
        Ok(target)
    });
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn unpack(archive: &[u8], what: &Path, subdir: &str, required: &[&str], tmp: &Path) -> Result<()> {
    let bad = |e: std::io::Error| Error::bad_file(what, format!("is not a valid .tar.gz archive: {e}"));
    let _ = std::fs::remove_dir_all(tmp);
    let out = tmp.join(subdir);
    std::fs::create_dir_all(&out).map_err(|e| Error::io("create", &out, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.into_owned();
        let mut parts = path.components();
        let name = match (parts.next(), parts.next(), parts.next()) {
            (Some(Component::Normal(dir)), Some(Component::Normal(name)), None) if dir == subdir => name,
            _ => continue,
        };
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let file = out.join(name);
        let mut f = std::fs::File::create(&file).map_err(|e| Error::io("create", &file, e))?;
        std::io::copy(&mut entry, &mut f).map_err(bad)?;
        f.sync_all().map_err(|e| Error::io("write", &file, e))?;
    }
    if let Some(missing) = required.iter().find(|f| !out.join(f).is_file()) {
        return Err(Error::bad_file(what, format!("does not contain `{subdir}/{missing}`")));
    }
    Ok(())
}

/// Largest download accepted (CIFAR-100's archive is 161 MB).
pub const MAX_DOWNLOAD: u64 = 512 << 20;

/// An HTTP(S) GET returning the body of a successful response, following redirects (ureq, with
/// rustls for TLS: a maintained client instead of our own protocol code).
pub fn http_get(url: &str) -> Result<Vec<u8>> {
    let fail = |m: String| Error::invalid("download", format!("{url}: {m}"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_body(Some(Duration::from_secs(600)))
        .user_agent("cnnzoo")
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    response.body_mut().with_config().limit(MAX_DOWNLOAD).read_to_vec().map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// A loopback server answering each request line from `answer`, one connection at a time.
    fn serve(answer: fn(&str, u16) -> String, connections: usize) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let Ok(mut stream) = stream else { return };
                let mut request = String::new();
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let _ = reader.read_line(&mut request);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).map_or(true, |n| n == 0) || line == "\r\n" {
                        break;
                    }
                }
                let _ = stream.write_all(answer(&request, port).as_bytes());
                // Close only after the client has: closing with its bytes unread would reset
                // the connection under it.
                let _ = stream.shutdown(std::net::Shutdown::Write);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            }
        });
        port
    }

    #[test]
    fn follows_redirects_and_names_the_url_on_failure() {
        let port = serve(
            |request, port| {
                if request.starts_with("GET /old") {
                    format!(
                        "HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:{port}/new\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                } else if request.starts_with("GET /new") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_string()
                } else {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
                }
            },
            3,
        );
        assert_eq!(http_get(&format!("http://127.0.0.1:{port}/old")).unwrap(), b"hello");
        let url = format!("http://127.0.0.1:{port}/missing");
        let err = http_get(&url).unwrap_err().to_string();
        assert!(err.contains(&url) && err.contains("404"), "{err}");
    }
}
