//! What the SQLite benchmarks share: the binaries `appends` (`src/bin/appends.rs`) and `soak`
//! (`src/bin/soak.rs`).

/// 100 bytes of JSON: `{"tag":TAG,"n":N,"pad":"xx…"}`.
pub fn payload(tag: &str, n: usize) -> String {
    let head = format!(r#"{{"tag":"{tag}","n":{n},"pad":""#);
    let pad = "x".repeat(100usize.saturating_sub(head.len() + 2));
    format!("{head}{pad}\"}}")
}
