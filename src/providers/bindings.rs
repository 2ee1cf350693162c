//! The only `bindgen!` calls: host bindings for every supported plugin API version, one
//! submodule per `wit/provider@X.Y.Z` folder.
//!
//! The host implements the newest version ([`latest`], re-exported at this module's root);
//! older versions are converted to it by their adapter (`v0_1`), as `wit/README.md` rule 4
//! says. Which version a component speaks is read from the name of the interface it exports
//! (`docobo:provider/provider@X.Y.Z`), before linking.

/// `wit/provider@0.1.0`, frozen: loaded through the `v0_1` adapter.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        world: "provider-plugin",
        path: "wit/provider@0.1.0",
        imports: { default: async },
        exports: { default: async },
    });

    /// The plain data types of 0.1.0.
    pub use self::docobo::provider::types as api;
}

/// `wit/provider@0.2.0`, the newest: what the host implements.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        world: "provider-plugin",
        path: "wit/provider@0.2.0",
        imports: { default: async },
        exports: { default: async },
    });

    /// The plain data types of 0.2.0.
    pub use self::docobo::provider::types as api;
}

/// The newest API version, which the host implements.
pub use v0_2 as latest;
pub use v0_2::{api, docobo};

/// The API version this host implements (the newest it loads).
pub const API_VERSION: &str = "0.2.0";

/// Every API version this host loads, oldest first.
pub const SUPPORTED_API_VERSIONS: &[&str] = &["0.1.0", "0.2.0"];

/// A supported plugin API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ApiVersion {
    V0_1,
    V0_2,
}

impl ApiVersion {
    /// The version a component built against `version` (from its export name) is loaded as.
    ///
    /// The component model matches `0.x` interfaces on `0.minor` (wasmtime's semver lookup:
    /// `0.1.7` links where `0.1.0` is defined), so a patch release of a version is that
    /// version; `0.0.x` and pre-releases are not supported.
    #[must_use]
    pub fn from_export(version: &str) -> Option<Self> {
        let mut parts = version.split('.');
        let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !patch.bytes().all(|b| b.is_ascii_digit()) || patch.is_empty()
        {
            return None;
        }
        match (major, minor) {
            ("0", "1") => Some(Self::V0_1),
            ("0", "2") => Some(Self::V0_2),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ApiVersion;

    #[test]
    fn versions_are_matched_on_major_and_minor_below_one() {
        assert_eq!(ApiVersion::from_export("0.1.0"), Some(ApiVersion::V0_1));
        assert_eq!(ApiVersion::from_export("0.1.7"), Some(ApiVersion::V0_1));
        assert_eq!(ApiVersion::from_export("0.2.0"), Some(ApiVersion::V0_2));
        for other in ["0.3.0", "1.0.0", "0.2", "0.2.0-rc1", "0.2.x", "0.2.0.1", ""] {
            assert_eq!(ApiVersion::from_export(other), None, "{other}");
        }
    }
}
