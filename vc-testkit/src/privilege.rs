//! Tests that need root (BPF, namespaces) skip with a reason on a developer's unprivileged
//! run, and fail under `cargo xtask test` (which sets `VC_REQUIRE_PRIV=1`), so CI can never
//! pass by skipping them.

/// Whether the process may load BPF programs and create namespaces.
#[must_use]
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Returns true when the test may go on. Otherwise prints why it skips, or panics when
/// skipping is not allowed.
#[must_use]
pub fn privileged(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("VC_REQUIRE_PRIV").is_none(),
        "{test}: needs root, and VC_REQUIRE_PRIV forbids skipping"
    );
    eprintln!("SKIP {test}: needs root (BPF, network namespaces)");
    false
}
