//! The fixtures in the repository's `tests/fixtures/` (its README says where each came from),
//! found from this crate's manifest folder so that every test and bench reads the same copy.

use std::path::{Path, PathBuf};

/// `tests/fixtures/`.
#[must_use]
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// `tests/fixtures/webhooks/`: signature vectors and provider payloads.
#[must_use]
pub fn webhooks() -> PathBuf {
    dir().join("webhooks")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fixture_folders_exist() {
        for path in [super::dir().join("discord/openapi.json"), super::webhooks()] {
            assert!(path.exists(), "{} is missing", path.display());
        }
    }
}
