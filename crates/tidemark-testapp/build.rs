//! Rebuild when a migration is added to the embedded directory (editing one already rebuilds:
//! it is included with `include_bytes!`).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
