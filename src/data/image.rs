//! [`Image`]: the 8-bit picture every data set yields and every transform works on — what a PIL
//! image in mode `L` (grey) or `RGB` holds, so that torchvision's transforms, which run on PIL
//! images up to `ToTensor`, can be reproduced exactly.

use crate::error::{Error, Result};

/// An 8-bit image, rows top to bottom, pixels interleaved (`height × width × channels`), with
/// 1 (grey) or 3 (RGB) channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// `height · width · channels` bytes.
    pub data: Vec<u8>,
}

impl Image {
    /// Checks that `data` holds `height · width · channels` bytes and that `channels` is 1 or 3.
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Result<Self> {
        if channels != 1 && channels != 3 {
            return Err(Error::invalid("image", format!("must have 1 or 3 channels, not {channels}")));
        }
        let want = width.checked_mul(height).and_then(|p| p.checked_mul(channels));
        if want != Some(data.len()) {
            return Err(Error::invalid(
                "image",
                format!("{width}x{height}x{channels} needs {want:?} bytes, got {}", data.len()),
            ));
        }
        Ok(Self { width, height, channels, data })
    }

    /// A decoded image as PIL's `convert("RGB")` (colour, palette, alpha dropped) or, for
    /// grey images, `convert("L")` (grey with alpha dropped); 16-bit samples are scaled to 8.
    pub fn from_dynamic(img: &image::DynamicImage) -> Self {
        use image::DynamicImage::*;
        match img {
            ImageLuma8(_) | ImageLumaA8(_) | ImageLuma16(_) | ImageLumaA16(_) => {
                let g = img.to_luma8();
                let (w, h) = g.dimensions();
                Self { width: w as usize, height: h as usize, channels: 1, data: g.into_raw() }
            }
            _ => {
                let rgb = img.to_rgb8();
                let (w, h) = rgb.dimensions();
                Self { width: w as usize, height: h as usize, channels: 3, data: rgb.into_raw() }
            }
        }
    }

    /// The pixel `(x, y)`'s channel `c`.
    pub fn at(&self, x: usize, y: usize, c: usize) -> u8 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// Planar `[channels, height, width]` values in [0, 1] (torchvision's `ToTensor`).
    pub fn to_tensor_data(&self) -> Vec<f32> {
        let (c, px) = (self.channels, self.width * self.height);
        let mut out = vec![0f32; c * px];
        for (i, pixel) in self.data.chunks_exact(c).enumerate() {
            for (ch, &v) in pixel.iter().enumerate() {
                out[ch * px + i] = f32::from(v) / 255.0;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_sizes_and_makes_planar_tensors() {
        assert!(Image::new(2, 2, 3, vec![0; 11]).is_err());
        assert!(Image::new(2, 2, 2, vec![0; 8]).is_err());
        let img = Image::new(2, 1, 3, vec![0, 51, 255, 255, 0, 102]).unwrap();
        assert_eq!(img.at(1, 0, 2), 102);
        assert_eq!(img.to_tensor_data(), vec![0.0, 1.0, 0.2, 0.0, 1.0, 0.4]);
        let grey = image::DynamicImage::ImageLumaA8(image::GrayAlphaImage::new(3, 2));
        let img = Image::from_dynamic(&grey);
        assert_eq!((img.width, img.height, img.channels, img.data.len()), (3, 2, 1, 6));
    }
}
