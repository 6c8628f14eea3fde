//! The IDX format (LeCun's MNIST files): a 4-byte magic `0 0 type ndim`, `ndim` big-endian u32
//! dimensions, then the data. Files may be gzip-compressed (detected by content, not by name).

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A decoded IDX file of unsigned bytes.
#[derive(Debug, Clone)]
pub struct Idx {
    /// Dimensions, e.g. `[60000, 28, 28]`.
    pub dims: Vec<usize>,
    /// The data, row-major.
    pub data: Vec<u8>,
    /// SHA-256 of the uncompressed file (header + data).
    pub sha256: String,
}

/// Most data bytes an IDX file may announce: 2 GiB (the largest IDX data set, EMNIST's
/// `byclass` training images, holds 547 MB). A gzip stream is decompressed no further than its
/// header announces, so a header or a stream that lies costs nothing beyond this.
pub const MAX_BYTES: usize = 1 << 31;

/// Reads `path` (gzip or raw) and checks it is a u8 IDX file with `ndim` dimensions whose data
/// length matches the header.
pub fn read(path: &Path, ndim: usize) -> Result<Idx> {
    let raw = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) { gunzip(path, &raw, ndim)? } else { raw };
    parse(path, &bytes, ndim)
}

/// Decompresses an IDX file: the header first, then no more data than it announces (and one
/// byte beyond, to tell a stream that is too long), so a gzip bomb is never inflated.
fn gunzip(path: &Path, raw: &[u8], ndim: usize) -> Result<Vec<u8>> {
    let corrupt = |e: std::io::Error| {
        Error::bad_file(path, format!("is not a valid gzip stream (truncated or corrupt?): {e}"))
    };
    let mut stream = flate2::read::MultiGzDecoder::new(raw);
    let header = 4 + 4 * ndim;
    let mut out = Vec::with_capacity(header);
    (&mut stream).take(header as u64).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() < header || out[..4] != [0, 0, 0x08, ndim as u8] {
        // Too short for the header, or not the expected kind of IDX file: `parse` says what is
        // wrong (before any size the header claims is believed).
        return Ok(out);
    }
    let claimed = out[4..]
        .chunks_exact(4)
        .try_fold(1usize, |acc, c| acc.checked_mul(u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize));
    let claimed = match claimed {
        Some(n) if n <= MAX_BYTES => n,
        _ => {
            let dims: Vec<String> = out[4..]
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]).to_string())
                .collect();
            return Err(Error::bad_file(
                path,
                format!(
                    "header claims {} bytes of data, more than cnnzoo reads from an IDX file (at most {} MiB); \
                     refused before decompressing",
                    dims.join("×"),
                    MAX_BYTES >> 20
                ),
            ));
        }
    };
    let wanted = (claimed + 1) as u64;
    out.reserve(claimed.min(raw.len().saturating_mul(4)));
    stream.take(wanted).read_to_end(&mut out).map_err(corrupt)?;
    if out.len() > header + claimed {
        return Err(Error::bad_file(
            path,
            format!(
                "decompresses to more than the {claimed} bytes of data its header announces (corrupt, \
                 or not what it claims to be)"
            ),
        ));
    }
    Ok(out)
}

/// Parses the bytes of an uncompressed IDX file.
pub fn parse(path: &Path, bytes: &[u8], ndim: usize) -> Result<Idx> {
    let what = if ndim == 3 { "images" } else { "labels" };
    if bytes.len() < 4 {
        return Err(Error::bad_file(
            path,
            format!("is {} bytes long, too short for an IDX header", bytes.len()),
        ));
    }
    let magic = &bytes[..4];
    let expected = [0, 0, 0x08, ndim as u8];
    if magic != expected {
        return Err(Error::bad_file(
            path,
            format!(
                "has magic number {:02x}{:02x}{:02x}{:02x}, expected {:02x}{:02x}{:02x}{:02x} (IDX {what}: unsigned bytes, {ndim} dimension{})",
                magic[0],
                magic[1],
                magic[2],
                magic[3],
                expected[0],
                expected[1],
                expected[2],
                expected[3],
                if ndim == 1 { "" } else { "s" }
            ),
        ));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::bad_file(path, "ends inside the IDX header (truncated?)"));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected_len = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let data_len = bytes.len() - header;
    if expected_len != Some(data_len) {
        let dims_text = dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×");
        return Err(Error::bad_file(
            path,
            format!(
                "header says {dims_text} = {} bytes of {what} but the file holds {data_len} (truncated or mislabelled?)",
                expected_len.map_or("too many".to_string(), |n| n.to_string())
            ),
        ));
    }
    if ndim == 3 && (dims[1] == 0 || dims[2] == 0) {
        return Err(Error::bad_file(path, "has images of size zero"));
    }
    Ok(Idx { dims, data: bytes[header..].to_vec(), sha256: hex(&Sha256::digest(bytes)) })
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: [u8; 4], dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(data);
        v
    }

    #[test]
    fn parses_and_checks() {
        let p = Path::new("x");
        let ok = parse(p, &idx([0, 0, 8, 3], &[2, 1, 2], &[1, 2, 3, 4]), 3).unwrap();
        assert_eq!(ok.dims, [2, 1, 2]);
        assert_eq!(ok.data, [1, 2, 3, 4]);
        let err = parse(p, &idx([0, 0, 8, 1], &[4], &[1, 2, 3, 4]), 3).unwrap_err().to_string();
        assert!(err.contains("magic number 00000801, expected 00000803"), "{err}");
        let err = parse(p, &idx([0, 0, 8, 3], &[2, 2, 2], &[1, 2, 3]), 3).unwrap_err().to_string();
        assert!(err.contains("2×2×2 = 8 bytes") && err.contains("holds 3"), "{err}");
        let err = parse(p, &[0, 0, 8], 1).unwrap_err().to_string();
        assert!(err.contains("too short"), "{err}");
    }
}
