//! TEMPORARY op timer (not committed).
use std::collections::BTreeMap;
use std::sync::Mutex;
static T: Mutex<BTreeMap<String, (f64, u64)>> = Mutex::new(BTreeMap::new());
pub fn time<R>(name: impl FnOnce() -> String, f: impl FnOnce() -> R) -> R {
    if std::env::var_os("CNNZOO_PROF").is_none() { return f(); }
    let t = std::time::Instant::now();
    let r = f();
    let d = t.elapsed().as_secs_f64();
    let mut m = T.lock().unwrap();
    let e = m.entry(name()).or_default();
    e.0 += d; e.1 += 1;
    r
}
pub fn reset() { T.lock().unwrap().clear(); }
pub fn dump() {
    if std::env::var_os("CNNZOO_PROF").is_none() { return; }
    let m = T.lock().unwrap();
    let mut v: Vec<_> = m.iter().collect();
    v.sort_by(|a, b| b.1.0.partial_cmp(&a.1.0).unwrap());
    let tot: f64 = v.iter().filter(|(k, _)| !k.starts_with(' ')).map(|x| x.1.0).sum();
    eprintln!("total top-level {:.3}", tot);
    for (k, (t, n)) in v { eprintln!("{:9.4} {:5} {}", t, n, k); }
}
