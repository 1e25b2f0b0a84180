//! Records the locked versions of the crates the report names.

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let mut name = "";
    let mut found = Vec::new();
    for line in lock.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = n.trim_matches('"');
        } else if let Some(v) = line.strip_prefix("version = ") {
            let v = v.trim_matches('"');
            if [
                "dynamo-es",
                "cqrs-es",
                "aws-sdk-dynamodb",
                "aws-smithy-http-client",
                "hyper",
                "tokio",
            ]
            .contains(&name)
            {
                found.push(format!("{name} {v}"));
            }
        }
    }
    found.sort();
    println!("cargo:rustc-env=BENCH_LOCKED_VERSIONS={}", found.join(", "));
}
