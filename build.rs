// `embed_migrations!` reads migrations/ at compile time, but cargo does not know that: without
// this, a new migration folder is not embedded until some source file changes.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
