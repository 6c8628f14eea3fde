//! The mutations: a splitmix64 generator and byte-level edits (bit flips, interesting bytes,
//! truncation, splicing, inflation, huge length fields, insertions, deletions), plus two that
//! know a little structure: JSON values swapped for extreme ones, and PNG chunk CRCs fixed up so
//! that a mutated header reaches the decoder instead of failing its checksum.

/// splitmix64: small, fast, and good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Bytes that break parsers: zero, all ones, the sign boundaries.
const INTERESTING: [u8; 6] = [0, 0xFF, 0x7F, 0x80, 0x01, 0xFE];

/// Values written over length and size fields (as u32 or u64, either endianness).
const HUGE: [u64; 9] = [
    0,
    1,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
    1 << 40,
    0x7FFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_FFFF_FFFF,
    0xFFFF_FFFF_FFFF_FFF8,
];

/// A position in `len` bytes, half the time within the first (or last) 4 KiB where headers,
/// zip directories and pickles live, so large seeds are not fuzzed mostly in their payload.
fn position(rng: &mut Rng, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    match rng.below(4) {
        0 => rng.below(len.min(4096)),
        1 => len - 1 - rng.below(len.min(4096)),
        _ => rng.below(len),
    }
}

/// `seed` with one to four random edits; `other` is a second seed to splice from.
pub fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        edit(rng, &mut v, other);
    }
    v
}

fn edit(rng: &mut Rng, v: &mut Vec<u8>, other: &[u8]) {
    let len = v.len();
    match rng.below(10) {
        // Flip one to eight bits.
        0 | 1 if len > 0 => {
            for _ in 0..1 + rng.below(8) {
                let i = position(rng, len);
                v[i] ^= 1 << rng.below(8);
            }
        }
        2 if len > 0 => {
            let i = position(rng, len);
            v[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        // Truncate.
        3 => v.truncate(if len == 0 { 0 } else { position(rng, len) }),
        // Splice: our head, then the other seed's tail.
        4 => {
            let cut = position(rng, len);
            let from = position(rng, other.len());
            v.truncate(cut);
            v.extend_from_slice(&other[from.min(other.len())..]);
        }
        // Inflate: duplicate a range, up to 64 times.
        5 if len > 0 => {
            let start = position(rng, len);
            let end = (start + 1 + rng.below(256)).min(len);
            let chunk = v[start..end].to_vec();
            let times = 1 + rng.below(64);
            let tail = v.split_off(end);
            for _ in 0..times {
                v.extend_from_slice(&chunk);
            }
            v.extend(tail);
        }
        // A huge length field.
        6 | 7 if len >= 4 => {
            let value = HUGE[rng.below(HUGE.len())];
            let wide = len >= 8 && rng.one_in(2);
            let width = if wide { 8 } else { 4 };
            let i = position(rng, len - width + 1).min(len - width);
            let bytes: Vec<u8> = match (wide, rng.one_in(2)) {
                (true, true) => value.to_le_bytes().to_vec(),
                (true, false) => value.to_be_bytes().to_vec(),
                (false, true) => (value as u32).to_le_bytes().to_vec(),
                (false, false) => (value as u32).to_be_bytes().to_vec(),
            };
            v[i..i + width].copy_from_slice(&bytes);
        }
        // Insert random bytes.
        8 => {
            let i = position(rng, len + 1).min(len);
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            v.splice(i..i, bytes);
        }
        // Delete a range.
        _ if len > 0 => {
            let start = position(rng, len);
            let end = (start + 1 + rng.below(64)).min(len);
            v.drain(start..end);
        }
        _ => v.push(rng.next() as u8),
    }
}

/// Extreme JSON values: numbers past every integer type, negatives, floats, wrong types.
fn extreme(rng: &mut Rng) -> serde_json::Value {
    use serde_json::json;
    match rng.below(13) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(u64::MAX),
        3 => json!(1u64 << 40),
        4 => json!(4_294_967_296u64),
        5 => json!(1e300),
        6 => json!(-0.0),
        7 => json!(null),
        8 => json!(""),
        9 => json!("../../../../etc"),
        10 => json!([]),
        11 => json!("/"),
        _ => json!({}),
    }
}

/// `text` parsed as JSON with one to three leaves (or whole sub-trees) replaced by extreme
/// values, or a key removed; `None` if `text` is not JSON.
pub fn mutate_json(rng: &mut Rng, text: &[u8]) -> Option<Vec<u8>> {
    let mut value: serde_json::Value = serde_json::from_slice(text).ok()?;
    for _ in 0..1 + rng.below(3) {
        let mut paths = Vec::new();
        collect(&value, String::new(), &mut paths);
        if paths.is_empty() {
            break;
        }
        let path = paths[rng.below(paths.len())].clone();
        if rng.one_in(6) {
            // Remove the member (or empty the array) instead.
            if let Some((parent, key)) = path.rsplit_once('/')
                && let Some(obj) = value.pointer_mut(parent).and_then(|p| p.as_object_mut())
            {
                obj.remove(key);
                continue;
            }
        }
        if let Some(slot) = value.pointer_mut(&path) {
            *slot = extreme(rng);
        }
    }
    serde_json::to_vec_pretty(&value).ok()
}

fn collect(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                collect(x, format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect(x, format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// Recomputes the CRC of every chunk of a PNG (as far as the chunk lengths make sense), so
/// that edits of IHDR and IDAT are judged by the decoder and not by the checksum.
pub fn fix_png_crcs(v: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= v.len() {
        let len = u32::from_be_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]]) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= v.len()) else {
            return;
        };
        let mut crc = flate2::Crc::new();
        crc.update(&v[at + 4..end]);
        v[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
        at = end + 4;
    }
}

/// Recomputes the CRC-32 of every stored (uncompressed) zip entry, in its local header and in
/// the central directory, so that edits of a `.pth`'s pickle reach the pickle reader instead
/// of failing the entry's checksum. Entries whose offsets no longer make sense are left alone.
pub fn fix_zip_crcs(v: &mut [u8]) {
    let u16_at = |v: &[u8], i: usize| u16::from_le_bytes([v[i], v[i + 1]]) as usize;
    let u32_at = |v: &[u8], i: usize| u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]) as usize;
    let mut fixed = Vec::new();
    let mut at = 0;
    while let Some(i) = find(v, at, b"PK\x03\x04") {
        at = i + 4;
        if i + 30 > v.len() || u16_at(v, i + 8) != 0 {
            continue;
        }
        let size = u32_at(v, i + 18);
        let start = i + 30 + u16_at(v, i + 26) + u16_at(v, i + 28);
        let Some(end) = start.checked_add(size).filter(|&e| e <= v.len()) else { continue };
        let mut crc = flate2::Crc::new();
        crc.update(&v[start..end]);
        v[i + 14..i + 18].copy_from_slice(&crc.sum().to_le_bytes());
        fixed.push((i, crc.sum()));
    }
    let mut at = 0;
    while let Some(i) = find(v, at, b"PK\x01\x02") {
        at = i + 4;
        if i + 46 > v.len() {
            continue;
        }
        let local = u32_at(v, i + 42);
        if let Some(&(_, crc)) = fixed.iter().find(|(l, _)| *l == local) {
            v[i + 16..i + 20].copy_from_slice(&crc.to_le_bytes());
        }
    }
}

fn find(v: &[u8], from: usize, pattern: &[u8]) -> Option<usize> {
    v.get(from..)?.windows(pattern.len()).position(|w| w == pattern).map(|p| p + from)
}

/// A safetensors file with its JSON header mutated ([`mutate_json`]) and its length field
/// rewritten to match, so that lying shapes, dtypes and offsets reach the reader; `None` if
/// `v` has no readable header.
pub fn mutate_safetensors_header(rng: &mut Rng, v: &[u8]) -> Option<Vec<u8>> {
    let len = usize::try_from(u64::from_le_bytes(v.get(..8)?.try_into().ok()?)).ok()?;
    let header = v.get(8..8usize.checked_add(len)?)?;
    let mutated = mutate_json(rng, header)?;
    let mut out = (mutated.len() as u64).to_le_bytes().to_vec();
    out.extend(mutated);
    out.extend(&v[8 + len..]);
    Some(out)
}
