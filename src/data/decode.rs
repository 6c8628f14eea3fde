//! Bounded image decoding: every image file or upload is decoded here. The header is read
//! first and an image larger than [`MAX_SIDE`] on a side or [`MAX_PIXELS`] in all is refused
//! *before* its pixel buffer is allocated, so a decompression bomb (a few hundred bytes of PNG
//! claiming 50,000×50,000) costs nothing; the decode itself runs under the `image` crate's
//! [`Limits`] as a second guard. An image that claims more pixels than its bytes can encode at
//! the format's best compression ([`max_pixels_for`]) is refused the same way: within the size
//! bounds, a 100-byte file claiming 10,000×10,000 would otherwise cost a 300 MB pixel buffer
//! before its data ran out.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Seek};
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

use super::image::Image;
use crate::error::{Error, Result};

/// Largest accepted width or height (torchvision has none; PIL warns above 89 megapixels).
pub const MAX_SIDE: u32 = 16_384;
/// Largest accepted pixel count: 100 megapixels (e.g. 10,000×10,000).
pub const MAX_PIXELS: u64 = 100_000_000;
/// Most bytes the decoder may allocate: [`MAX_PIXELS`] of 16-bit RGBA (8 bytes each) plus slack.
pub const MAX_ALLOC: u64 = 1 << 30;

/// Decodes a PNG or JPEG file (format from its content) of any colour type into an 8-bit grey
/// or RGB [`Image`] (PIL's `convert("L")` / `convert("RGB")`). Errors name `path`; an image over
/// the size bounds is refused with its claimed size before any pixel buffer is allocated.
pub fn decode_file(path: &Path) -> Result<Image> {
    decode_file_dynamic(path).map(|img| Image::from_dynamic(&img))
}

/// [`decode_file`] for bytes in memory (an upload); `what` names them in errors.
pub fn decode_bytes(bytes: &[u8], what: &str) -> Result<Image> {
    decode_bytes_dynamic(bytes, what).map(|img| Image::from_dynamic(&img))
}

/// [`decode_file`], keeping the decoded colour type and depth.
pub fn decode_file_dynamic(path: &Path) -> Result<DynamicImage> {
    let open = || File::open(path).map(BufReader::new).map_err(|e| Error::io("open", path, e));
    let len = std::fs::metadata(path).map_err(|e| Error::io("read", path, e))?.len();
    decode_bounded(open, len, path)
}

/// [`decode_bytes`], keeping the decoded colour type and depth.
pub fn decode_bytes_dynamic(bytes: &[u8], what: &str) -> Result<DynamicImage> {
    decode_bounded(|| Ok(Cursor::new(bytes)), bytes.len() as u64, Path::new(what))
}

/// Reads the header from one reader, checks the claimed size against the bounds and against
/// the `len` bytes of the file, decodes from a second one.
fn decode_bounded<R: BufRead + Seek>(
    open: impl Fn() -> Result<R>,
    len: u64,
    name: &Path,
) -> Result<DynamicImage> {
    let reader = |limits: Limits| -> Result<ImageReader<R>> {
        let mut r =
            ImageReader::new(open()?).with_guessed_format().map_err(|e| Error::io("read", name, e))?;
        r.limits(limits);
        Ok(r)
    };
    let undecodable =
        |e: image::ImageError| Error::bad_file(name, format!("cannot be decoded as an image: {e}"));
    let mut header_limits = Limits::default();
    header_limits.max_alloc = Some(MAX_ALLOC);
    let header = reader(header_limits)?;
    let format = header.format();
    let (w, h) = header.into_dimensions().map_err(undecodable)?;
    check_size(w, h).map_err(|m| Error::bad_file(name, m))?;
    if let Some(format) = format {
        check_plausible(w, h, format, len).map_err(|m| Error::bad_file(name, m))?;
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader(limits)?.decode().map_err(undecodable)
}

/// Whether a `w × h` image is within [`MAX_SIDE`] and [`MAX_PIXELS`]; the message says why not.
pub fn check_size(w: u32, h: u32) -> std::result::Result<(), String> {
    let pixels = u64::from(w) * u64::from(h);
    if w > MAX_SIDE || h > MAX_SIDE || pixels > MAX_PIXELS {
        return Err(format!(
            "claims {w}×{h} pixels, more than cnnzoo decodes (at most {MAX_SIDE} on a side and \
             {} megapixels); refused before decoding",
            MAX_PIXELS / 1_000_000
        ));
    }
    if pixels == 0 {
        return Err(format!("claims {w}×{h} pixels: an empty image"));
    }
    Ok(())
}

/// The most pixels `len` bytes of `format` can encode, at the format's best compression:
/// PNG at one bit per pixel under deflate's largest ratio (1032:1), JPEG at one bit per 8×8
/// block (a 1-bit Huffman code for its DC term, the least a scan can spend on a block). No
/// image that decodes completely exceeds it; one that does claims more than its file holds.
pub fn max_pixels_for(format: ImageFormat, len: u64) -> u64 {
    match format {
        ImageFormat::Png => len.saturating_mul(8 * 1032),
        ImageFormat::Jpeg => len.saturating_mul(8 * 64),
        _ => u64::MAX,
    }
}

/// Whether a `w × h` `format` image can be held in `len` bytes ([`max_pixels_for`]).
fn check_plausible(w: u32, h: u32, format: ImageFormat, len: u64) -> std::result::Result<(), String> {
    let pixels = u64::from(w) * u64::from(h);
    let most = max_pixels_for(format, len);
    if pixels > most {
        return Err(format!(
            "claims {w}×{h} pixels, more than its {len} bytes can hold as {format:?} (at most {most} \
             pixels): truncated or corrupt; refused before decoding"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_bounds() {
        assert!(check_size(MAX_SIDE, 6000).is_ok());
        assert!(check_size(MAX_SIDE + 1, 1).unwrap_err().contains("16385×1"));
        assert!(check_size(12_000, 12_000).unwrap_err().contains("12000×12000"));
        assert!(check_size(0, 5).is_err());
    }

    #[test]
    fn claims_beyond_the_bytes_are_implausible() {
        // 8 × 1032 pixels a byte for PNG, 512 for JPEG.
        assert!(check_plausible(2000, 2000, ImageFormat::Png, 485).is_ok());
        assert!(check_plausible(2000, 2000, ImageFormat::Png, 484).is_err());
        assert!(check_plausible(512, 1000, ImageFormat::Jpeg, 1000).is_ok());
        let err = check_plausible(9000, 9000, ImageFormat::Jpeg, 600).unwrap_err();
        assert!(err.contains("9000×9000") && err.contains("600 bytes"), "{err}");
        assert_eq!(max_pixels_for(ImageFormat::Png, u64::MAX), u64::MAX);
    }

    #[test]
    fn decodes_png_bytes_and_names_garbage() {
        let mut png = Vec::new();
        let img = image::RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 7]));
        img.write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
        let got = decode_bytes(&png, "upload").unwrap();
        assert_eq!((got.width, got.height, got.channels), (3, 2, 3));
        assert_eq!((got.at(2, 1, 0), got.at(2, 1, 1), got.at(2, 1, 2)), (20, 20, 7));
        let err = decode_bytes(&png[..png.len() / 2], "half.png").unwrap_err().to_string();
        assert!(err.contains("half.png"), "{err}");
        let err = decode_bytes(b"not an image at all", "junk").unwrap_err().to_string();
        assert!(err.contains("junk"), "{err}");
    }
}
