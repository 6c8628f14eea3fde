//! Writing files so that a crash never leaves a half-written one: write a sibling temp file,
//! sync it, rename it over the target.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", path, e)
    })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::invalid("json", e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Writes a rendered chart (`(svg, png)`, as the plot module's `render()` returns it) as
/// `dir/stem.svg` and `dir/stem.png`, each atomically.
pub fn write_chart(dir: &Path, stem: &str, (svg, png): &(String, Vec<u8>)) -> Result<()> {
    write_atomic(&dir.join(format!("{stem}.svg")), svg.as_bytes())?;
    write_atomic(&dir.join(format!("{stem}.png")), png)
}

/// Runs `write` on a temp path next to `path`, then renames it over `path`.
pub fn with_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = tmp_path(path);
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into", path, e))
}

/// `dir/.name.tmp` for `dir/name`.
pub fn tmp_path(path: &Path) -> std::path::PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}
